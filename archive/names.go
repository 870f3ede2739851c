package archive

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Tar entry names of the layout.
const (
	layoutName   = "oci-layout"
	indexName    = "index.json"
	blobsDir     = "blobs/"
	blobsSHA256  = "blobs/sha256/"
	layoutJSON   = `{"imageLayoutVersion":"1.0.0"}`
	layoutVerOCI = "1.0.0"
)

// blobName is the tar entry name of a blob.
func blobName(d v1.Hash) string { return blobsSHA256 + d.Hex }

// parseBlobName returns the digest a blob entry name stands for; only
// blobs/sha256/<64 lowercase hex> is a blob name, so that extraction can
// never leave the layout directory.
func parseBlobName(name string) (v1.Hash, bool) {
	hex, ok := strings.CutPrefix(name, blobsSHA256)
	if !ok || !isSHA256Hex(hex) {
		return v1.Hash{}, false
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex}, true
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkDigest accepts only sha256 digests in canonical (lowercase) form:
// they are the only ones a layout of this format can name as a file.
func checkDigest(d v1.Hash) error {
	if d.Algorithm != "sha256" || !isSHA256Hex(d.Hex) {
		return fmt.Errorf("digest %q is not sha256:<64 lowercase hex>", d.String())
	}
	return nil
}
