//go:build race

package preprocess

// sync.Pool deliberately drops items under the race detector.
const raceEnabled = true
