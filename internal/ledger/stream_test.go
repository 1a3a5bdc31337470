package ledger

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestPendingFromStream(t *testing.T) {
	p := change(listA, h1, rem, 10).Precedence()
	row := func(w string) map[string]events.DynamoDBAttributeValue {
		return map[string]events.DynamoDBAttributeValue{
			dynPK:      events.NewStringAttribute(h1),
			dynSK:      events.NewStringAttribute(listA.Key()),
			dynWant:    events.NewNumberAttribute(w),
			dynSent:    events.NewNumberAttribute("0"),
			dynPrec:    events.NewStringAttribute(p),
			dynPending: events.NewStringAttribute(pendingKey(listA, rem, h1[0])),
			dynFlip:    events.NewStringAttribute(p),
		}
	}
	without := func(name string) map[string]events.DynamoDBAttributeValue {
		img := row("2")
		delete(img, name)
		return img
	}
	with := func(name string, v events.DynamoDBAttributeValue) map[string]events.DynamoDBAttributeValue {
		img := row("2")
		img[name] = v
		return img
	}
	tests := []struct {
		name  string
		image map[string]events.DynamoDBAttributeValue
		want  Pending
		ok    bool
	}{
		{"pending exit", row("2"), Pending{Hash: h1, Op: rem, Precedence: p}, true},
		{"pending join", row("1"), Pending{Hash: h1, Op: add, Precedence: p}, true},
		{"sent row", without(dynPending), Pending{}, false},
		{"counter item", map[string]events.DynamoDBAttributeValue{
			dynPK: events.NewStringAttribute("n#" + listA.Key() + "#ab"), dynSK: events.NewStringAttribute("n"),
			dynCount: events.NewNumberAttribute("3"),
		}, Pending{}, false},
		{"no precedence", without(dynPrec), Pending{}, false},
		{"want of the wrong type", with(dynWant, events.NewStringAttribute("1")), Pending{}, false},
		{"unknown want", with(dynWant, events.NewNumberAttribute("0")), Pending{}, false},
		{"hash of the wrong type", with(dynPK, events.NewNumberAttribute("1")), Pending{}, false},
		{"empty image", nil, Pending{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, got, ok := PendingFromStream(tt.image)
			if ok != tt.ok || got != tt.want || (ok && key != listA.Key()) {
				t.Fatalf("PendingFromStream = %q, %+v, %v; want %q, %+v, %v", key, got, ok, listA.Key(), tt.want, tt.ok)
			}
		})
	}
}
