package connect

import (
	"strings"
	"testing"
)

func TestParseStore(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		want    StoreSpec
		wantErr string
	}{
		{name: "file", spec: "file:.pinlist/token.json", want: StoreSpec{KindFile, ".pinlist/token.json"}},
		{name: "file with a colon in the path", spec: "file:C:/pinlist/token.json", want: StoreSpec{KindFile, "C:/pinlist/token.json"}},
		{name: "secret name", spec: "secretsmanager:pinlist/pinterest-token", want: StoreSpec{KindSecretsManager, "pinlist/pinterest-token"}},
		{
			name: "secret ARN",
			spec: "secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:pinlist-token-AbCdEf",
			want: StoreSpec{KindSecretsManager, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pinlist-token-AbCdEf"},
		},
		{name: "no kind", spec: ".pinlist/token.json", wantErr: "want file:PATH or secretsmanager:NAME_OR_ARN"},
		{name: "unknown kind", spec: "ssm:/pinlist/token", wantErr: "want file:PATH or secretsmanager:NAME_OR_ARN"},
		{name: "kind in capitals", spec: "FILE:token.json", wantErr: "want file:PATH"},
		{name: "empty path", spec: "file:", wantErr: "the path after \"file:\" is empty"},
		{name: "empty secret", spec: "secretsmanager:", wantErr: "secret name or ARN"},
		{name: "secret with a space", spec: "secretsmanager:my secret", wantErr: "no spaces"},
		{name: "control character", spec: "file:token\n.json", wantErr: "control character"},
		{name: "empty", spec: "", wantErr: "want file:PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStore(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseStore(%q) = %v, %v; want an error saying %q", tt.spec, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseStore(%q) = %v, %v; want %v", tt.spec, got, err, tt.want)
			}
			if got.String() != tt.spec {
				t.Errorf("String() = %q, want %q", got.String(), tt.spec)
			}
		})
	}
}

func TestSecretRegion(t *testing.T) {
	tests := []struct{ name, id, want string }{
		{"ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pinlist-token-AbCdEf", "eu-west-1"},
		{"GovCloud ARN", "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:t-AbCdEf", "us-gov-west-1"},
		{"name", "pinlist/pinterest-token", ""},
		{"another service's ARN", "arn:aws:ssm:eu-west-1:123456789012:parameter/x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SecretRegion(tt.id); got != tt.want {
				t.Errorf("SecretRegion(%q) = %q, want %q", tt.id, got, tt.want)
			}
		})
	}
}
