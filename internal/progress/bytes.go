package progress

import "fmt"

// Bytes formats n in IEC units ("1.5 GiB"), as progress bars and ferry's
// summaries do, so that an error below cmd/ words a size as the rest of
// the output does.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
