//go:build !race

package relocate_test

const raceEnabled = false
