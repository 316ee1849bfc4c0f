// Package web is Switchboard's browser UI: the chat page and the admin
// console, plain HTML, CSS and JavaScript embedded in the binary. Nothing is
// built or fetched from elsewhere: the pages work offline, served as they
// are by package api.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the UI's files: index.html (the chat page), admin.html (the
// admin console) and the scripts, styles and icon they load by name.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded: this cannot happen
	}
	return sub
}
