package volumes

import (
	"fmt"
	"math/big"
	"strings"
)

// multipliers are the suffixes ParseSize accepts, lowercase. A bare
// letter is SI (powers of 1000), as disks, DVDs and upload portals count;
// an "i" makes it IEC (powers of 1024). A trailing "b" changes nothing.
var multipliers = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20,
	"gi": 1 << 30, "gib": 1 << 30, "ti": 1 << 40, "tib": 1 << 40,
}

// ParseSize reads a volume size (--split-size): a number of bytes,
// optionally with a decimal fraction and a suffix, case-insensitive:
//
//	k, M, G, T (or kB, MB, GB, TB)       SI: 1000, 1000², 1000³, 1000⁴
//	Ki, Mi, Gi, Ti (or KiB, MiB, …)      IEC: 1024, 1024², 1024³, 1024⁴
//
// So "4G" is 4,000,000,000 bytes (fits FAT32, whose limit is 4 GiB − 1 =
// 4294967295 bytes, which "4Gi" exceeds by one), "4.7G" a DVD and "700M"
// a CD. A fraction of a byte is rounded down, so a volume is never larger
// than asked.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	num := strings.TrimRightFunc(in, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	mult, ok := multipliers[strings.ToLower(strings.TrimSpace(in[len(num):]))]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown suffix %q (k, M, G, T for powers of 1000; Ki, Mi, Gi, Ti for powers of 1024)", s, in[len(num):])
	}
	whole, frac, _ := strings.Cut(num, ".")
	// Digits only: big.Rat would also take Go's underscores (1_000).
	digits := strings.Trim(whole+frac, "0123456789") == ""
	if whole == "" && frac == "" || strings.Contains(frac, ".") || !digits {
		return 0, fmt.Errorf("size %q: not a number of bytes", s)
	}
	// Exact arithmetic: (whole.frac × mult) rounded down.
	v, ok := new(big.Rat).SetString("0" + whole + "." + frac + "0")
	if !ok {
		return 0, fmt.Errorf("size %q: not a number of bytes", s)
	}
	v.Mul(v, new(big.Rat).SetInt64(mult))
	n := new(big.Int).Quo(v.Num(), v.Denom())
	switch {
	case !n.IsInt64():
		return 0, fmt.Errorf("size %q: too large", s)
	case n.Sign() <= 0:
		return 0, fmt.Errorf("size %q: must be at least one byte", s)
	}
	return n.Int64(), nil
}
