// Package fifo opens a named pipe (FIFO) for reading without waiting in
// open(2) for its writer where the runtime can poll it (Linux): there,
// nothing but a writer would end that wait, and a signal would not end
// ferry. The commands that read a file a user names (an archive, a --since
// base) open a FIFO through it. Elsewhere it opens one as any program
// does.
package fifo
