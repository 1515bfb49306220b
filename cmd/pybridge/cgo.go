//go:build cgo

package main

// embedAvailable: this binary can embed Python (it was built with cgo).
const embedAvailable = true
