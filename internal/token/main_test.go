package token

import (
	"os"
	"testing"

	"github.com/pinlist/pinlist/internal/awstest"
)

// moto is the one moto_server of this test binary (Secrets Manager tests).
var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }
