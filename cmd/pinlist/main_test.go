package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/awstest"
)

// moto is this test binary's one moto_server (real SQS and Secrets Manager
// APIs on loopback), shared by every command's tests: connect writes a moto
// secret, redrive moves moto dead letters. Tests point the commands' AWS SDK
// at it with t.Setenv(moto.Env()...).
var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }

// useMoto points the AWS SDK of the commands run in this test at moto, and
// away from any shared AWS configuration of the machine.
func useMoto(t *testing.T) {
	t.Helper()
	for _, kv := range moto.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_PROFILE", "")
}
