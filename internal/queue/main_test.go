package queue

import (
	"os"
	"testing"

	"github.com/pinlist/pinlist/internal/awstest"
)

// moto is the one moto_server of this test binary (SQS tests).
var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }
