package connect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/pinlist/pinlist/internal/token"
)

// Store kinds of a StoreSpec.
const (
	KindFile           = "file"
	KindSecretsManager = "secretsmanager"
)

// maxLocation bounds a store location (an ARN is at most 2048 characters).
const maxLocation = 4096

// StoreSpec names a token store as `--store` gives it: "file:PATH" or
// "secretsmanager:NAME_OR_ARN".
type StoreSpec struct {
	Kind     string // KindFile or KindSecretsManager
	Location string // the file's path, or the secret's name or ARN
}

// String is the spec as the command line gives it.
func (s StoreSpec) String() string { return s.Kind + ":" + s.Location }

// ParseStore reads a store spec. The error says which forms are accepted.
func ParseStore(spec string) (StoreSpec, error) {
	kind, loc, ok := strings.Cut(spec, ":")
	if !ok || (kind != KindFile && kind != KindSecretsManager) {
		return StoreSpec{}, fmt.Errorf("store %q: want file:PATH or secretsmanager:NAME_OR_ARN", spec)
	}
	what := "path"
	if kind == KindSecretsManager {
		what = "secret name or ARN"
	}
	switch {
	case loc == "":
		return StoreSpec{}, fmt.Errorf("store %q: the %s after %q is empty", spec, what, kind+":")
	case len(loc) > maxLocation:
		return StoreSpec{}, fmt.Errorf("store %s:...: longer than %d bytes", kind, maxLocation)
	case strings.ContainsFunc(loc, unicode.IsControl):
		return StoreSpec{}, fmt.Errorf("store %s:...: contains a control character", kind)
	case kind == KindSecretsManager && strings.ContainsFunc(loc, unicode.IsSpace):
		return StoreSpec{}, fmt.Errorf("store %q: a secret name or ARN has no spaces", spec)
	}
	return StoreSpec{Kind: kind, Location: loc}, nil
}

// SecretRegion returns the region of a Secrets Manager secret ARN
// (arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME), "" for a name.
// A command can use it when no AWS region is configured.
func SecretRegion(secretID string) string {
	parts := strings.SplitN(secretID, ":", 7)
	if len(parts) == 7 && parts[0] == "arn" && parts[2] == "secretsmanager" {
		return parts[3]
	}
	return ""
}

// Target is where Run writes the token.
type Target struct {
	// Name describes the store to the user, e.g. "file:.pinlist/token.json".
	Name  string
	Store token.Store
	// Check, when set, runs before the OAuth flow starts and fails when the
	// store can certainly not be written, so nobody approves an app in the
	// browser for nothing.
	Check func(ctx context.Context) error
}

// FileTarget is the 0600 token file at path (token.FileStore).
func FileTarget(path string) Target {
	return Target{
		Name:  StoreSpec{Kind: KindFile, Location: path}.String(),
		Store: token.FileStore{Path: path},
		Check: func(context.Context) error {
			info, err := os.Stat(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil
			case err != nil:
				return fmt.Errorf("check token file %s: %w", path, err)
			case info.IsDir():
				return fmt.Errorf("check token file %s: it is a directory: give the file's path, e.g. file:%s/token.json", path, strings.TrimRight(path, "/"))
			}
			return nil
		},
	}
}

// SecretsAPI is the part of the Secrets Manager client a secretsmanager
// target uses: reads and writes through token.SecretsManagerStore, and
// DescribeSecret for the check.
type SecretsAPI interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
}

var _ SecretsAPI = (*secretsmanager.Client)(nil)

// SecretsManagerTarget is the Secrets Manager secret secretID (a name or an
// ARN), written with PutSecretValue (token.SecretsManagerStore). The secret
// must exist: the SAM template creates it without a value. The check fails
// for a secret that does not exist or a Secrets Manager that cannot be
// reached; it lets access denied pass, since writing needs only
// secretsmanager:PutSecretValue.
func SecretsManagerTarget(client SecretsAPI, secretID string) Target {
	return Target{
		Name:  StoreSpec{Kind: KindSecretsManager, Location: secretID}.String(),
		Store: token.NewSecretsManagerStore(client, secretID),
		Check: func(ctx context.Context) error {
			_, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secretID)})
			var nf *types.ResourceNotFoundException
			var api smithy.APIError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &nf):
				return fmt.Errorf("secret %s does not exist in this account and region: deploy the stack first (it creates the secret; see its PinterestTokenSecretArn output), or check the name and AWS_REGION", secretID)
			case errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException":
				return nil
			}
			return fmt.Errorf("check secret %s: %w", secretID, err)
		},
	}
}
