//go:build !unix

package volumes

import "os"

// openRegular opens the file at path for reading, and refuses it unless it
// is a regular file (symbolic links followed).
func openRegular(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
