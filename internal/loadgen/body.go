package loadgen

import (
	"bytes"
	"encoding/json"
	"time"
)

// Profile is one AEP profile as a caller sends it.
type Profile struct {
	Identities  []Identity
	Memberships []Membership
}

// Identity is one entry of a profile's identityMap.
type Identity struct {
	Namespace string // as sent: "email", "Email", "gaid", "idfa", "phone", ...
	ID        string
}

// Membership is one entry of a profile's segmentMembership.
type Membership struct {
	Namespace string // the audience namespace, e.g. "ups"
	Audience  string // the audience ID
	Status    string // "realized", "existing", "exited"
	Time      time.Time
}

// Statuses AEP sends.
const (
	StatusRealized = "realized"
	StatusExisting = "existing"
	StatusExited   = "exited"
)

// BodyForm is the shape of a POST /v1/profiles body.
type BodyForm int

const (
	FormArray   BodyForm = iota // [profile, ...]
	FormWrapped                 // {"profiles": [profile, ...]}
	FormSingle                  // profile (only for one profile)
)

// TimeLayout is how lastQualificationTime is written: AEP's own form,
// milliseconds and a UTC offset ("2024-05-06T07:08:09.123+0000").
const TimeLayout = "2006-01-02T15:04:05.000-0700"

type aepIdentity struct {
	ID string `json:"id"`
}

type aepMembership struct {
	Status                string `json:"status"`
	LastQualificationTime string `json:"lastQualificationTime"`
}

type aepProfile struct {
	IdentityMap       map[string][]aepIdentity            `json:"identityMap"`
	SegmentMembership map[string]map[string]aepMembership `json:"segmentMembership"`
}

func (p Profile) aep() aepProfile {
	out := aepProfile{
		IdentityMap:       map[string][]aepIdentity{},
		SegmentMembership: map[string]map[string]aepMembership{},
	}
	for _, id := range p.Identities {
		out.IdentityMap[id.Namespace] = append(out.IdentityMap[id.Namespace], aepIdentity{ID: id.ID})
	}
	for _, m := range p.Memberships {
		ns := out.SegmentMembership[m.Namespace]
		if ns == nil {
			ns = map[string]aepMembership{}
			out.SegmentMembership[m.Namespace] = ns
		}
		ns[m.Audience] = aepMembership{Status: m.Status, LastQualificationTime: m.Time.UTC().Format(TimeLayout)}
	}
	return out
}

// EncodeBody writes profiles as a POST /v1/profiles body of the given form
// (FormSingle needs exactly one profile; otherwise it falls back to
// FormArray). The same profiles always encode to the same bytes.
func EncodeBody(profiles []Profile, form BodyForm) []byte {
	list := make([]aepProfile, len(profiles))
	for i, p := range profiles {
		list[i] = p.aep()
	}
	var v any = list
	switch {
	case form == FormWrapped:
		v = struct {
			Profiles []aepProfile `json:"profiles"`
		}{list}
	case form == FormSingle && len(list) == 1:
		v = list[0]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // maps of strings always encode
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
