// Package bundle is ferry's model of imgpkg bundles: it builds bundle and
// plain images from directories byte for byte as imgpkg does (so that
// `ferry push` and `imgpkg push` of one directory give one digest), recognises
// bundles, reads the metadata files a bundle carries, and builds and reads the
// image-locations images that imgpkg writes beside relocated bundles.
package bundle
