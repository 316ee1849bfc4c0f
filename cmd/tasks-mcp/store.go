package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits on task text, so one tool call cannot grow the store without bound.
const (
	maxTitleLen       = 200
	maxDescriptionLen = 1000
)

// errTaskNotFound is what a user sees for a task that does not exist and for
// a task of another user alike: nobody learns whether another user's task id
// exists.
var errTaskNotFound = errors.New("task not found")

// Task is one to-do item of one user.
type Task struct {
	ID          int       `json:"id"`
	UserID      string    `json:"user_id"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Completed   bool      `json:"completed"`
	CreatedAt   time.Time `json:"created_at"`
}

// Status filters for list.
const (
	statusAll       = "all"
	statusPending   = "pending"
	statusCompleted = "completed"
)

// store keeps tasks in memory, and in a JSON file when path is set. Every
// change is written to the file before it is acknowledged.
type store struct {
	path string // "" keeps tasks in memory only

	mu     sync.Mutex
	tasks  map[int]*Task
	nextID int
	now    func() time.Time
}

// fileFormat is the on-disk shape of a store.
type fileFormat struct {
	NextID int     `json:"next_id"`
	Tasks  []*Task `json:"tasks"`
}

// openStore returns a store persisted at path, loading the tasks already
// there; a missing file is an empty store. An empty path keeps tasks in
// memory only.
func openStore(path string) (*store, error) {
	s := &store{path: path, tasks: map[int]*Task{}, nextID: 1, now: time.Now}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tasks: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read tasks from %s: %w", path, err)
	}
	for _, t := range f.Tasks {
		if t == nil || t.ID <= 0 {
			continue
		}
		s.tasks[t.ID] = t
		s.nextID = max(s.nextID, t.ID+1)
	}
	s.nextID = max(s.nextID, f.NextID)
	return s, nil
}

// validateTitle normalises a title and checks it is usable.
func validateTitle(title string) (string, error) {
	title = strings.TrimSpace(title)
	if title == "" {
		return "", errors.New("title must not be empty")
	}
	if n := utf8.RuneCountInString(title); n > maxTitleLen {
		return "", fmt.Errorf("title is %d characters long, the limit is %d", n, maxTitleLen)
	}
	return title, nil
}

func validateDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	if n := utf8.RuneCountInString(d); n > maxDescriptionLen {
		return "", fmt.Errorf("description is %d characters long, the limit is %d", n, maxDescriptionLen)
	}
	return d, nil
}

// add creates a task for user.
func (s *store) add(user, title, description string) (Task, error) {
	title, err := validateTitle(title)
	if err != nil {
		return Task{}, err
	}
	description, err = validateDescription(description)
	if err != nil {
		return Task{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &Task{
		ID:          s.nextID,
		UserID:      user,
		Title:       title,
		Description: description,
		CreatedAt:   s.now().UTC().Truncate(time.Second),
	}
	s.tasks[t.ID] = t
	s.nextID++
	if err := s.saveLocked(); err != nil {
		delete(s.tasks, t.ID)
		s.nextID--
		return Task{}, err
	}
	return *t, nil
}

// list returns user's tasks with the given status, oldest first.
func (s *store) list(user, status string) ([]Task, error) {
	switch status {
	case "", statusAll, statusPending, statusCompleted:
	default:
		return nil, fmt.Errorf("status must be one of %q, %q or %q, not %q", statusAll, statusPending, statusCompleted, status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Task{}
	for _, t := range s.tasks {
		if t.UserID != user ||
			status == statusPending && t.Completed ||
			status == statusCompleted && !t.Completed {
			continue
		}
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Task) int { return a.ID - b.ID })
	return out, nil
}

// update changes user's task id with change, persists it and returns the
// result. It returns errTaskNotFound if user has no task id.
func (s *store) update(user string, id int, change func(*Task) error) (Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok || t.UserID != user {
		return Task{}, errTaskNotFound
	}
	old := *t
	if err := change(t); err != nil {
		*t = old
		return Task{}, err
	}
	if err := s.saveLocked(); err != nil {
		*t = old
		return Task{}, err
	}
	return *t, nil
}

// remove deletes user's task id and returns it. It returns errTaskNotFound
// if user has no task id.
func (s *store) remove(user string, id int) (Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok || t.UserID != user {
		return Task{}, errTaskNotFound
	}
	delete(s.tasks, id)
	if err := s.saveLocked(); err != nil {
		s.tasks[id] = t
		return Task{}, err
	}
	return *t, nil
}

// saveLocked writes the store to its file atomically: a temporary file in the
// same directory, synced, then renamed over the old one, so a crash leaves
// either the old or the new file, never half of one.
func (s *store) saveLocked() error {
	if s.path == "" {
		return nil
	}
	f := fileFormat{NextID: s.nextID, Tasks: make([]*Task, 0, len(s.tasks))}
	for _, t := range s.tasks {
		f.Tasks = append(f.Tasks, t)
	}
	slices.SortFunc(f.Tasks, func(a, b *Task) int { return a.ID - b.ID })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("save tasks: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save tasks: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save tasks: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save tasks: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save tasks: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("save tasks: %w", err)
	}
	return nil
}
