package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// Alert is one message for the people who run the connection: which
// connection, what happened, and the exact command that fixes it.
type Alert struct {
	Connection       string
	Subject          string
	Problem          string
	ReconnectCommand string
}

// Text is the alert's body.
func (a Alert) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pinlist connection %q: %s\n\n%s\n", a.Connection, a.Subject, a.Problem)
	if a.ReconnectCommand != "" {
		fmt.Fprintf(&b, "\nTo reconnect (a new Pinterest OAuth grant), run:\n\n    %s\n", a.ReconnectCommand)
	}
	return b.String()
}

// Title is a short subject line (SNS caps subjects at 100 characters).
func (a Alert) Title() string {
	s := fmt.Sprintf("pinlist %s: %s", a.Connection, a.Subject)
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// Alerter delivers alerts.
type Alerter interface {
	Publish(ctx context.Context, a Alert) error
}

type snsPublisher interface {
	Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error)
}

var _ snsPublisher = (*sns.Client)(nil)

// SNSAlerter publishes alerts to an SNS topic (PINLIST_ALERT_TOPIC_ARN).
type SNSAlerter struct {
	client   snsPublisher
	topicARN string
}

// NewSNSAlerter returns an alerter for topicARN.
func NewSNSAlerter(client snsPublisher, topicARN string) *SNSAlerter {
	return &SNSAlerter{client: client, topicARN: topicARN}
}

// Publish sends a to the topic.
func (s *SNSAlerter) Publish(ctx context.Context, a Alert) error {
	_, err := s.client.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(s.topicARN),
		Subject:  aws.String(a.Title()),
		Message:  aws.String(a.Text()),
	})
	if err != nil {
		return fmt.Errorf("publish alert to %s: %w", s.topicARN, err)
	}
	return nil
}

// LogAlerter writes alerts to a logger at error level (the local stack).
type LogAlerter struct{ Logger *slog.Logger }

// Publish logs a.
func (l LogAlerter) Publish(ctx context.Context, a Alert) error {
	l.Logger.ErrorContext(ctx, "ALERT: "+a.Title(), "connection", a.Connection, "problem", a.Problem,
		"reconnect_command", a.ReconnectCommand)
	return nil
}
