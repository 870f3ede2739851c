package relocate_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/regopts"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// A registry that commits a blob slowly (distribution on S3 copies it when
// the PUT commits) answers after --registry-response-header-timeout. The
// timeout looks like context.DeadlineExceeded to errors.Is, yet the
// command's context is alive: the upload is retried in a new session, as
// for a dropped connection, on copy and on import alike.
func TestUploadAnsweredLateIsRetried(t *testing.T) {
	for _, move := range []string{"copy", "import"} {
		t.Run(move, func(t *testing.T) {
			src := impNewSource(t, 0)
			reg := testregistry.NewDistribution(t)
			proxy := testregistry.NewFaultProxy(t, reg)
			dst := &impDest{reg: reg, proxy: proxy, ep: &proxy.Endpoint, repo: impMust(name.NewRepository(proxy.Repo("dst/imported")))}
			// Every request of the whole move must be answered within the
			// timeout: 1.5 s, for a loaded machine.
			const timeout = 1500 * time.Millisecond
			ro := regopts.Options{RetryBackoff: 5 * time.Millisecond, ResponseHeaderTimeout: timeout}
			dopts := relocate.DestinationOptions{
				Remote: impMust(ro.RemoteOptions(context.Background())),
				Client: registry.New(impMust(ro.ClientOptions())),
			}
			var data []byte
			if move == "import" {
				data = src.export(t)
			}
			// Held well past the timeout, once: the first attempt fails (the
			// proxy stops holding it when the client gives up).
			proxy.SetRules(testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultStall, Delay: 4 * timeout, Times: 1})
			var err error
			if move == "copy" {
				_, err = relocate.Copy(context.Background(), cpPlan(t, src), dst.repo, relocate.CopyOptions{DestinationOptions: dopts})
			} else {
				_, err = relocate.Import(context.Background(), bytes.NewReader(data), dst.repo, relocate.ImportOptions{DestinationOptions: dopts, SpoolDir: t.TempDir()})
			}
			if err != nil {
				t.Fatalf("%s through one late upload answer (5 attempts allowed): %v", move, err)
			}
			if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
				t.Errorf("destination tags differ:\n%s", d)
			}
		})
	}
}
