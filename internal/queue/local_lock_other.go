//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package queue

// lockLocalConsumer cannot lock on this system: the consumer runs without
// the lock, so OpenLocal cannot prove a previous consumer dead and leaves its
// in-flight messages to their visibility timeout.
func lockLocalConsumer(string) (unlock func() error, exclusive bool, err error) {
	return func() error { return nil }, false, nil
}
