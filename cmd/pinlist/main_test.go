package main

import (
	"os"
	"testing"

	"github.com/pinlist/pinlist/internal/awstest"
)

// moto is this test binary's one moto_server (real SQS and Secrets Manager
// APIs on loopback), shared by every command's tests: connect writes a moto
// secret, redrive moves moto dead letters. Tests point the commands' AWS SDK
// at it with t.Setenv(moto.Env()...).
var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }
