package connect

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
)

// OpenSystemBrowser asks the desktop to open url in the default browser
// (xdg-open, open, or the Windows URL handler) and returns without waiting
// for it. Without a graphical session on Linux and the BSDs it does nothing
// and says so: there xdg-open would start a text browser in the terminal.
func OpenSystemBrowser(_ context.Context, url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return errors.New("no graphical session (DISPLAY is not set)")
		}
		cmd = exec.Command("xdg-open", url)
	}
	// Stdin, stdout and stderr stay unset (the null device): the opener must
	// not read from or write to the terminal.
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap it; the opener exits once it handed over
	return nil
}
