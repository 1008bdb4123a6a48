//go:build tools

// Package deps pins modules that parts of the tree import before every package exists.
package deps
