package registry

import "testing"

// Every form a resolver may read as an internal address is one; names,
// public addresses and malformed numbers are not.
func TestInternalAddress(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.1": true, "2130706433": true, "0x7f.1": true, "0177.0.0.1": true,
		"10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true, "169.254.169.254": true, "0.0.0.0": true,
		"::1": true, "fe80::1%eth0": true, "::ffff:127.0.0.1": true, "fd00::1": true, "[::1]": false,
		"localhost": true, "LOCALHOST.": true, "api.localhost": true, "100.100.100.200": true,
		"8.8.8.8": false, "2001:4860:4860::8888": false, "registry.example.com": false, "localhost.example.com": false,
		"256.0.0.1": false, "1.2.3.4.5": false, "127.0.0.0x100": false, "": false,
	} {
		if got := internalAddress(host); got != want {
			t.Errorf("internalAddress(%q) = %v, want %v", host, got, want)
		}
	}
}
