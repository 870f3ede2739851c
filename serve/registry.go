// Package serve answers the pull side of the OCI distribution API from a
// ferry archive with a seek table (or its volumes), or an imgpkg tarball,
// read only: `ferry serve`. Manifests come from the archive's head, held
// in memory; configs and layers are read from where they lie in the
// archive file, decompressing only the frames a request needs
// (archive.File; an imgpkg tarball's layers lie uncompressed), each
// verified in full against its digest before its first byte is sent.
//
// What is served, and under which repositories and tags, is decided by
// relocate (RepoView, MirrorView): the tags an import writes, or the
// images' original repositories. Everything else (pushes, deletes, unknown
// routes) is refused with the distribution spec's error document.
//
// Like go-containerregistry's pkg/registry, one small handler answers each
// kind of resource; unlike it, nothing here ever changes.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/relocate"
)

// DefaultStreams is how many configs and layers are read from the archive
// at once when Options.Streams is zero. Each holds a zstd decoder with the
// window of one frame (4 MiB in ferry's archives), so this bounds the
// server's memory however many clients pull; further requests wait their
// turn, for StreamWait at most.
const DefaultStreams = 16

// DefaultStreamWait is how long a blob request waits for a stream, when
// Options.StreamWait is zero, before it is answered 429 TOOMANYREQUESTS
// with a Retry-After: slow clients may hold every stream for as long as
// their downloads take, and a client told to come back later does better
// than one left hanging.
const DefaultStreamWait = 30 * time.Second

// DefaultStallTimeout is how long a response may make no progress (a
// client that stopped reading) before its connection is dropped, freeing
// its stream, when Options.StallTimeout is zero.
const DefaultStallTimeout = time.Minute

// Options configure a Registry.
type Options struct {
	// Repository, when set, serves the whole archive as this one
	// repository (a path without a registry, "team/app-bundle"), with
	// exactly the tags an import into it writes, locations images
	// included (relocate.RepoView). Otherwise each image is served under
	// the repository path of its original reference (relocate.MirrorView).
	Repository string
	// RepoBasedTags gives Repository the tags of an import with
	// --repo-based-tags.
	RepoBasedTags bool
	// Users, when set, must authenticate every request (HTTP basic auth).
	Users *Htpasswd
	// Streams bounds the configs and layers read from the archive at once;
	// 0 means DefaultStreams.
	Streams int
	// StreamWait bounds how long a blob request waits for a stream (or
	// for its blob's check to get one); 0 means DefaultStreamWait.
	StreamWait time.Duration
	// StallTimeout drops a response that makes no progress for that long;
	// 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// Reporter gets one Logf line per request, and warnings; nil discards
	// them.
	Reporter progress.Reporter
	// Damaged is told of each config or layer whose check failed (it is
	// then refused to every client), once, with the error naming where in
	// the archive it lies; it is called from the goroutine that checked
	// it. Nil: the Reporter's Warnf says it.
	Damaged func(d v1.Hash, err error)
}

// Registry is an http.Handler serving an archive as a read-only registry.
type Registry struct {
	src      source
	view     *relocate.RegistryView
	repos    []string            // sorted
	tags     map[string][]string // sorted, by repository
	sizes    map[v1.Hash]int64   // of the archive's configs and layers
	users    *Htpasswd
	streams  chan struct{}
	wait     time.Duration // for a stream
	stall    time.Duration
	rep      progress.Reporter
	onDamage func(d v1.Hash, err error)
	// damaged counts the blobs found damaged.
	damaged atomic.Int64
	// ctx bounds the verifications, which outlive the request that
	// started them so that the requests waiting for the same blob share
	// them.
	ctx context.Context
	// absent are the configs and layers the manifests reference that the
	// archive does not hold, each with why: left out of a delta, or
	// non-distributable. They are unknown blobs here, not damaged ones.
	absent map[v1.Hash]string

	mu       sync.Mutex
	verified map[v1.Hash]*verification
	// small holds the verified blobs of at most smallBlob bytes (configs,
	// mostly), smallBytes in all, served without a stream.
	small      map[v1.Hash][]byte
	smallBytes int64
}

// nameRE is the distribution spec's repository name.
var nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

// maxRepositoryLength is the longest repository name served: the
// distribution registry's limit, and go-containerregistry's, which every
// original reference in an archive has passed.
const maxRepositoryLength = 255

// CheckRepository returns an error unless name is a repository name the
// distribution spec allows ("team/app-bundle": lowercase path components,
// no registry, at most maxRepositoryLength characters).
func CheckRepository(name string) error {
	if len(name) > maxRepositoryLength {
		return fmt.Errorf("%s is not a repository name: longer than %d characters", echoed(name), maxRepositoryLength)
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q is not a repository name (lowercase path components such as team/app-bundle, without a registry)", name)
	}
	return nil
}

// New prepares to serve f, a ferry archive with a seek table
// (*archive.File) or an imgpkg tarball (*archive.ImgpkgTar), as
// relocate.OpenSeekable opens them. With Options.Repository it reads each
// bundle's images.yml from the archive to build the locations images. ctx
// bounds the Registry's work: the blob verifications that outlive a
// request end with it.
func New(ctx context.Context, f relocate.RandomArchive, opts Options) (*Registry, error) {
	if opts.Streams < 0 || opts.StreamWait < 0 || opts.StallTimeout < 0 {
		return nil, fmt.Errorf("serve: negative Streams (%d), StreamWait (%s) or StallTimeout (%s)", opts.Streams, opts.StreamWait, opts.StallTimeout)
	}
	src, err := sourceOf(f)
	if err != nil {
		return nil, err
	}
	var view *relocate.RegistryView
	if opts.Repository != "" {
		if err := CheckRepository(opts.Repository); err != nil {
			return nil, err
		}
		view, err = relocate.RepoView(ctx, f, opts.Repository, relocate.RepoViewOptions{RepoBasedTags: opts.RepoBasedTags})
	} else {
		view, err = relocate.MirrorView(f.Head(), CheckRepository)
	}
	if err != nil {
		return nil, err
	}
	r := &Registry{
		src:      src,
		view:     view,
		tags:     map[string][]string{},
		sizes:    map[v1.Hash]int64{},
		users:    opts.Users,
		streams:  make(chan struct{}, orDefault(opts.Streams, DefaultStreams)),
		wait:     orDefault(opts.StreamWait, DefaultStreamWait),
		stall:    orDefault(opts.StallTimeout, DefaultStallTimeout),
		small:    map[v1.Hash][]byte{},
		rep:      progress.OrNop(opts.Reporter),
		onDamage: opts.Damaged,
		ctx:      ctx,
		verified: map[v1.Hash]*verification{},
	}
	if len(view.Repositories) == 0 {
		// Listening would answer 404 to every pull.
		why := "the archive has no index.json entry"
		if len(view.Warnings) > 0 {
			why = view.Warnings[0]
			if n := len(view.Warnings) - 1; n > 0 {
				why += fmt.Sprintf(", and %d more", n)
			}
		}
		return nil, fmt.Errorf("serve: nothing to serve as a mirror, no entry has an original reference it can be served under (%s): serve it under one repository instead (--repo)", why)
	}
	for name, repo := range view.Repositories {
		r.repos = append(r.repos, name)
		r.tags[name] = repo.SortedTags()
	}
	sort.Strings(r.repos)
	for _, b := range f.Head().Blobs {
		r.sizes[b.Digest] = b.Size
	}
	r.findAbsent()
	return r, nil
}

// findAbsent lists the configs and layers the archive does not hold, and
// says so once: a delta's are held where its base went, which is where
// clients must pull them from.
func (r *Registry) findAbsent() {
	h := r.src.Head()
	r.absent = map[v1.Hash]string{}
	for _, d := range h.SkippedLayers {
		r.absent[d] = "it is a non-distributable layer, which ferry export leaves out: fetch it from the URLs its manifest gives"
	}
	if len(h.SkippedLayers) > 0 {
		r.rep.Logf("%d non-distributable layers are not in the archive: clients get 404 BLOB_UNKNOWN for them and fetch them from the URLs their manifests give", len(h.SkippedLayers))
	}
	if h.Delta == nil || len(h.Delta.LeftOut) == 0 {
		return
	}
	bases := make([]string, len(h.Delta.Bases))
	for i, b := range h.Delta.Bases {
		bases[i] = b.String()
	}
	var size int64
	for _, l := range h.Delta.LeftOut {
		where := "the destination of its base, " + bases[l.Base]
		if l.Repository != "" {
			where = l.Repository + " (by " + bases[l.Base] + ")"
		}
		r.absent[l.Digest] = "the archive is a delta, which leaves it out as held by " + where + ": pull it from there"
		size += l.Size
	}
	r.rep.Warnf("the archive is a delta: it leaves out %d of its configs and layers (%d bytes), held by the destination of its base (%s); clients get 404 BLOB_UNKNOWN for them and must pull them from there (or import the delta there)",
		len(h.Delta.LeftOut), size, strings.Join(bases, "; "))
}

// orDefault returns v, or def when v is not positive.
func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// View is what the Registry serves.
func (r *Registry) View() *relocate.RegistryView { return r.view }

// Repositories are the repositories served, sorted.
func (r *Registry) Repositories() []string { return r.repos }

// ServeHTTP implements http.Handler.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: r.stall, head: req.Method == http.MethodHead}
	lw.extend()
	var user string
	// Deferred: a response cut short aborts the handler (a panic of
	// http.ErrAbortHandler), and is logged too.
	defer func() {
		// Taken to be logged, then passed on as it was.
		aborted := recover()
		switch {
		case lw.status != 0:
		case req.Context().Err() != nil:
			// Nothing was answered: the client left first (or the server
			// stopped), which a 200 would hide.
			lw.status = statusClientGone
		default:
			lw.status = http.StatusOK
		}
		host, _, err := net.SplitHostPort(req.RemoteAddr)
		if err != nil {
			host = req.RemoteAddr
		}
		if user != "" {
			user = " user " + user
		}
		var cut string
		if lw.err != nil || aborted != nil {
			// The client got less than the status promised: a closed
			// connection, a stalled client, or the server stopping.
			cut = ", cut short"
		}
		r.rep.Logf("%s %s %s %d %d bytes %s%s%s", host, logged(req.Method), logged(req.URL.RequestURI()), lw.status, lw.bytes, time.Since(start).Round(time.Millisecond), user, cut)
		if aborted != nil {
			panic(aborted)
		}
	}()
	r.serve(lw, req, &user)
}

// serve answers req, and sets user to the user it authenticated.
func (r *Registry) serve(w http.ResponseWriter, req *http.Request, user *string) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.users != nil {
		u, p, ok := req.BasicAuth()
		if ok {
			var err error
			if ok, err = r.users.Authenticate(req.Context(), u, p); err != nil {
				return // the client went away while its check waited
			}
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry serve"`)
			newError(http.StatusUnauthorized, codeUnauthorized, "authentication required").write(w)
			return
		}
		*user = u
	}
	// An unknown route is unknown whatever the method: 405 says that the
	// resource exists.
	rt, ok := parseRoute(req.URL.Path)
	if !ok {
		newError(http.StatusNotFound, codeUnsupported, "%s is not a route of the distribution API", echoed(req.URL.Path)).write(w)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		newError(http.StatusMethodNotAllowed, codeUnsupported, "ferry serve is read only: %s is not supported", echoed(req.Method)).write(w)
		return
	}
	if rerr := r.route(w, req, rt); rerr != nil {
		rerr.write(w)
	}
}

// statusClientGone is logged for a request whose context ended before
// any status was written: nginx's 499, "client closed request".
const statusClientGone = 499

// route is the resource a request path names.
type route struct {
	kind string // one of the kind* constants
	repo string
	ref  string // a tag or digest
}

const (
	kindBase      = "base"
	kindCatalog   = "catalog"
	kindManifest  = "manifest"
	kindBlob      = "blob"
	kindUpload    = "upload"
	kindTags      = "tags"
	kindReferrers = "referrers"
)

// parseRoute reads a /v2/ path. Repository names may hold slashes, so the
// resource is recognised from the end of the path.
func parseRoute(path string) (route, bool) {
	if path == "/v2/" || path == "/v2" {
		return route{kind: kindBase}, true
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	if rest == "_catalog" {
		return route{kind: kindCatalog}, true
	}
	c := strings.Split(rest, "/")
	n := len(c)
	switch {
	case n >= 3 && c[n-3] == "blobs" && c[n-2] == "uploads":
		return route{kind: kindUpload, repo: strings.Join(c[:n-3], "/"), ref: c[n-1]}, true
	case n >= 3 && c[n-2] == "manifests":
		return route{kind: kindManifest, repo: strings.Join(c[:n-2], "/"), ref: c[n-1]}, true
	case n >= 3 && c[n-2] == "blobs":
		return route{kind: kindBlob, repo: strings.Join(c[:n-2], "/"), ref: c[n-1]}, true
	case n >= 3 && c[n-2] == "tags" && c[n-1] == "list":
		return route{kind: kindTags, repo: strings.Join(c[:n-2], "/")}, true
	case n >= 3 && c[n-2] == "referrers":
		return route{kind: kindReferrers, repo: strings.Join(c[:n-2], "/"), ref: c[n-1]}, true
	}
	return route{}, false
}

// route answers a GET or HEAD of rt.
func (r *Registry) route(w http.ResponseWriter, req *http.Request, rt route) *regError {
	switch rt.kind {
	case kindBase:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		return nil
	case kindCatalog:
		return r.catalog(w, req)
	}
	if err := CheckRepository(rt.repo); err != nil {
		return newError(http.StatusBadRequest, codeNameInvalid, "%v", err)
	}
	repo, ok := r.view.Repositories[rt.repo]
	if !ok {
		return newError(http.StatusNotFound, codeNameUnknown, "repository %s is not in the archive", rt.repo)
	}
	switch rt.kind {
	case kindManifest:
		return r.manifest(w, req, repo, rt.ref)
	case kindBlob:
		return r.blob(w, req, repo, rt.ref)
	case kindTags:
		return r.tagList(w, req, repo)
	case kindReferrers:
		return r.referrers(w, req, repo, rt.ref)
	}
	return newError(http.StatusNotFound, codeBlobUploadUnknown, "ferry serve is read only: there are no uploads")
}

// parseDigest reads the digest of a request path.
func parseDigest(s string) (v1.Hash, *regError) {
	d, err := v1.NewHash(s)
	if err != nil {
		// NewHash's error repeats s whole.
		return v1.Hash{}, newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest %s: want ALGORITHM:HEX, such as sha256: and 64 lowercase hex digits", echoed(s))
	}
	return d, nil
}

// logWriter records what a response sent, for the request log, and gives
// each write StallTimeout to go through. It also keeps an error response
// from describing a blob or manifest it does not carry: the ETag and
// Docker-Content-Digest set for a success are dropped from it, whoever
// writes it (regError.write, or http.ServeContent's 416).
type logWriter struct {
	http.ResponseWriter
	rc     *http.ResponseController
	stall  time.Duration
	head   bool // a HEAD: Go discards the body, which is not counted
	status int
	bytes  int64
	err    error // the first failed write: the response was cut short
}

// extend moves the write deadline StallTimeout from now. Errors are
// ignored: a ResponseWriter without deadlines (a test recorder) has no
// connection to lose.
func (w *logWriter) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.stall)) }

// WriteHeader implements http.ResponseWriter.
func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if code >= 400 {
			w.Header().Del("ETag")
			w.Header().Del("Docker-Content-Digest")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *logWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	if !w.head {
		w.bytes += int64(n)
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errShuttingDown answers the requests that were waiting when the server
// began to stop.
var errShuttingDown = errors.New("ferry serve is shutting down")
