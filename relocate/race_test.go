//go:build race

package relocate_test

// raceEnabled says the tests run under the race detector, several times
// slower: the longest of them try fewer cases.
const raceEnabled = true
