package api

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// query parses the request's query string strictly: where Go's URL.Query
// drops a pair without a word (a ";", which is no longer a separator, or a
// malformed %-escape), and a filter would be ignored, it fails. The error
// wraps ErrInvalid (code invalid_query) and names the parameter.
func query(c *gin.Context) (url.Values, error) {
	return parseQuery(c.Request.URL.RawQuery)
}

// parseQuery is url.ParseQuery with errors that say what to fix.
func parseQuery(raw string) (url.Values, error) {
	q := url.Values{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, keyErr := url.QueryUnescape(rawKey)
		name := key
		if keyErr != nil {
			name = rawKey
		}
		if strings.Contains(pair, ";") {
			what := "the query"
			if name != "" && !strings.Contains(name, ";") {
				what = fmt.Sprintf("parameter %q", clip(name))
			}
			return nil, switchboard.Errorf(switchboard.ErrInvalid, "invalid_query",
				`%s contains a ";": parameters are separated by "&", and a semicolon in a value is written %%3B`, what)
		}
		value, valueErr := url.QueryUnescape(rawValue)
		if keyErr != nil || valueErr != nil {
			return nil, switchboard.Errorf(switchboard.ErrInvalid, "invalid_query",
				`parameter %q is not correctly escaped: a "%%" must start an escape such as %%20 (a "%%" itself is %%25)`, clip(name))
		}
		q[key] = append(q[key], value)
	}
	return q, nil
}
