package infra

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wantGrants is every permission each function has: "action resource", the
// resource being the logical ID the statement points at. Least privilege
// means this list is exact; a new permission is a conscious edit here.
var wantGrants = map[string][]string{
	"IngestFunction": {
		"logs:CreateLogStream IngestLogGroup",
		"logs:PutLogEvents IngestLogGroup",
		"secretsmanager:GetSecretValue IngestTokenSecret",
		"sqs:SendMessage ChangesQueue", // also authorises SendMessageBatch
	},
	"ApplyFunction": {
		// ledger.Dynamo.Apply and the name store; a TransactWriteItems is
		// authorised as its PutItem and UpdateItem.
		"dynamodb:BatchGetItem LedgerTable",
		"dynamodb:GetItem LedgerTable",
		"dynamodb:PutItem LedgerTable",
		"dynamodb:UpdateItem LedgerTable",
		"logs:CreateLogStream ApplyLogGroup",
		"logs:PutLogEvents ApplyLogGroup",
		// What the SQS event source mapping does for the function.
		"sqs:ChangeMessageVisibility ChangesQueue",
		"sqs:DeleteMessage ChangesQueue",
		"sqs:GetQueueAttributes ChangesQueue",
		"sqs:ReceiveMessage ChangesQueue",
	},
	"UploadFunction": {
		// What the stream event source mapping does for the function.
		"dynamodb:DescribeStream LedgerTable.StreamArn",
		// The flush: names, leases, MarkSent, list items and pending rows.
		"dynamodb:GetItem LedgerTable",
		"dynamodb:GetRecords LedgerTable.StreamArn",
		"dynamodb:GetShardIterator LedgerTable.StreamArn",
		"dynamodb:PutItem LedgerTable",
		"dynamodb:Query ${LedgerTable.Arn}/index/pending",
		"dynamodb:Query LedgerTable",
		"dynamodb:UpdateItem LedgerTable",
		"logs:CreateLogStream UploadLogGroup",
		"logs:PutLogEvents UploadLogGroup",
		"secretsmanager:GetSecretValue PinterestTokenSecret",
		// The stream's OnFailure destination (batch coordinates).
		"sqs:SendMessage ParkedUploadsQueue",
	},
	"RefreshFunction": {
		"logs:CreateLogStream RefreshLogGroup",
		"logs:PutLogEvents RefreshLogGroup",
		"secretsmanager:GetSecretValue PinterestTokenSecret",
		"secretsmanager:PutSecretValue PinterestTokenSecret",
		"sns:Publish AlertTopic",
	},
}

// secretWriteActions change a secret's value or life; only the refresh
// function may hold one, and only PutSecretValue.
var secretWriteActions = []string{
	"secretsmanager:putsecretvalue", "secretsmanager:updatesecret", "secretsmanager:updatesecretversionstage",
	"secretsmanager:deletesecret", "secretsmanager:restoresecret", "secretsmanager:rotatesecret",
	"secretsmanager:createsecret", "secretsmanager:putresourcepolicy",
}

// statement is one IAM policy statement and where it was found.
type statement struct {
	where     string
	effect    any
	actions   []string
	resources []any
	raw       map[string]any
}

// policyStatements lists the statements of a policy document.
func policyStatements(doc any, where string) []statement {
	var out []statement
	for i, s := range list(get(doc, "Statement")) {
		sm := asMap(s)
		st := statement{where: fmt.Sprintf("%s#%d", where, i), effect: sm["Effect"], resources: list(sm["Resource"]), raw: sm}
		for _, a := range list(sm["Action"]) {
			st.actions = append(st.actions, fmt.Sprint(a))
		}
		out = append(out, st)
	}
	return out
}

// roleStatements lists the inline policy statements of an AWS::IAM::Role.
func roleStatements(id string, role map[string]any) []statement {
	var out []statement
	for _, p := range list(get(role, "Properties", "Policies")) {
		out = append(out, policyStatements(get(p, "PolicyDocument"), fmt.Sprintf("%s/%v", id, get(p, "PolicyName")))...)
	}
	return out
}

// allStatements is every IAM statement a template grants: roles, standalone
// policies, and SAM function Policies written as statements.
func allStatements(res map[string]any) []statement {
	var out []statement
	for _, id := range sortedKeys(res) {
		r := asMap(res[id])
		switch r["Type"] {
		case "AWS::IAM::Role":
			out = append(out, roleStatements(id, r)...)
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			out = append(out, policyStatements(get(r, "Properties", "PolicyDocument"), id)...)
		case "AWS::Serverless::Function":
			for i, p := range list(get(r, "Properties", "Policies")) {
				out = append(out, policyStatements(p, fmt.Sprintf("%s/Policies#%d", id, i))...)
			}
		}
	}
	return out
}

// statementProblems applies the rules that hold for every statement: no
// wildcard resource for SQS, Secrets Manager or DynamoDB actions, no wildcard
// actions on them, Allow only, and secret writes only by the refresh function's role.
func statementProblems(stmts []statement, refreshRole string) []string {
	if len(stmts) == 0 {
		return []string{"no IAM statements found"}
	}
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, st := range stmts {
		if st.effect != "Allow" {
			bad("%s: Effect %v; the template grants, it does not deny", st.where, st.effect)
		}
		if _, ok := st.raw["NotAction"]; ok {
			bad("%s: NotAction grants everything else", st.where)
		}
		if _, ok := st.raw["NotResource"]; ok {
			bad("%s: NotResource grants everything else", st.where)
		}
		guarded := false
		for _, a := range st.actions {
			la := strings.ToLower(a)
			sqsOrSecrets := strings.HasPrefix(la, "sqs:") || strings.HasPrefix(la, "secretsmanager:") || strings.HasPrefix(la, "dynamodb:")
			if la == "*" || (sqsOrSecrets && strings.Contains(la, "*")) {
				bad("%s: wildcard action %s", st.where, a)
			}
			if la == "*" || sqsOrSecrets {
				guarded = true
			}
			if slices.Contains(secretWriteActions, la) && (!strings.HasPrefix(st.where, refreshRole+"/") || la != "secretsmanager:putsecretvalue") {
				bad("%s: %s; only %s may write a secret, and only with PutSecretValue", st.where, a, refreshRole)
			}
		}
		if !guarded {
			continue
		}
		if len(st.resources) == 0 && st.raw["NotResource"] == nil {
			bad("%s: %v with no Resource", st.where, st.actions)
		}
		for _, r := range st.resources {
			s, ok := r.(string)
			if !ok {
				s, ok = asMap(r)["Fn::Sub"].(string) // "${Table.Arn}/index/*" is a wildcard too
			}
			if ok && strings.Contains(s, "*") {
				bad("%s: %v on Resource %q; SQS, Secrets Manager and DynamoDB grants must name the exact ARN", st.where, st.actions, s)
			}
		}
	}
	return out
}

// grantsOf renders a role's statements as sorted "action resource" lines.
func grantsOf(stmts []statement) []string {
	var out []string
	for _, st := range stmts {
		for _, a := range st.actions {
			for _, r := range st.resources {
				out = append(out, a+" "+describe(r))
			}
		}
	}
	slices.Sort(out)
	return out
}

// functionRole returns the logical ID of the role a function runs with.
func functionRole(t *testing.T, id string, props map[string]any) string {
	t.Helper()
	role := target(props["Role"])
	if role == "" {
		t.Fatalf("%s has no Role: !GetAtt <Role>.Arn; a SAM-generated role would attach managed policies with Resource \"*\" (AWSLambdaSQSQueueExecutionRole for the SQS event)", id)
	}
	return role
}

func TestTemplateIAM(t *testing.T) {
	tpl := loadTemplate(t)
	res := asMap(tpl["Resources"])

	for _, p := range statementProblems(allStatements(res), "RefreshFunctionRole") {
		t.Error(p)
	}

	for id := range functionPackages {
		t.Run(id, func(t *testing.T) {
			props := tpl.functionProps(t, id)
			if _, ok := props["Policies"]; ok {
				t.Errorf("%s sets Policies; with an explicit Role its permissions belong in the role", id)
			}
			roleID := functionRole(t, id, props)
			role := tpl.resource(t, roleID, "AWS::IAM::Role")
			checkRole(t, roleID, role)
			if diff := cmp.Diff(wantGrants[id], grantsOf(roleStatements(roleID, role))); diff != "" {
				t.Errorf("%s (%s) grants (-want +got):\n%s", id, roleID, diff)
			}
		})
	}
}

// checkRole holds for every function role: assumable by Lambda only, and no
// managed policies (their statements are out of sight and AWS's Lambda ones
// use Resource "*").
func checkRole(t *testing.T, id string, role map[string]any) {
	t.Helper()
	if mp := list(get(role, "Properties", "ManagedPolicyArns")); len(mp) > 0 {
		t.Errorf("%s attaches managed policies %v; write the statements out with exact resources", id, mp)
	}
	trust := policyStatements(get(role, "Properties", "AssumeRolePolicyDocument"), id+"/trust")
	if len(trust) != 1 || fmt.Sprint(list(get(trust[0].raw, "Principal", "Service"))) != "[lambda.amazonaws.com]" ||
		fmt.Sprint(trust[0].actions) != "[sts:AssumeRole]" {
		t.Errorf("%s trust policy %v, want lambda.amazonaws.com sts:AssumeRole only", id, get(role, "Properties", "AssumeRolePolicyDocument"))
	}
}

// TestStatementProblemsCatches makes sure the rules above fail on what they are
// meant to catch, and pass what is allowed, so a green TestTemplateIAM means
// something.
func TestStatementProblemsCatches(t *testing.T) {
	cases := []struct {
		name  string
		where string
		doc   string
		bad   bool
	}{
		{"sqs on every queue", "IngestFunctionRole/x", `{Statement: [{Effect: Allow, Action: sqs:SendMessage, Resource: "*"}]}`, true},
		{"secret by wildcard ARN", "IngestFunctionRole/x", `{Statement: [{Effect: Allow, Action: [secretsmanager:GetSecretValue], Resource: "arn:aws:secretsmanager:*:*:secret:*"}]}`, true},
		{"service wildcard action", "IngestFunctionRole/x", `{Statement: [{Effect: Allow, Action: "sqs:*", Resource: !GetAtt Q.Arn}]}`, true},
		{"action prefix wildcard", "IngestFunctionRole/x", `{Statement: [{Effect: Allow, Action: "secretsmanager:Get*", Resource: !Ref S}]}`, true},
		{"secret write outside refresh", "UploadFunctionRole/x", `{Statement: [{Effect: Allow, Action: secretsmanager:PutSecretValue, Resource: !Ref S}]}`, true},
		{"refresh may not rotate", "RefreshFunctionRole/x", `{Statement: [{Effect: Allow, Action: secretsmanager:UpdateSecret, Resource: !Ref S}]}`, true},
		{"NotResource", "IngestFunctionRole/x", `{Statement: [{Effect: Allow, Action: sqs:SendMessage, NotResource: !GetAtt Q.Arn}]}`, true},
		{"Deny", "IngestFunctionRole/x", `{Statement: [{Effect: Deny, Action: sqs:SendMessage, Resource: !GetAtt Q.Arn}]}`, true},
		{"exact queue", "IngestFunctionRole/x", `{Statement: [{Effect: Allow, Action: sqs:SendMessage, Resource: !GetAtt Q.Arn}]}`, false},
		{"refresh writes the token", "RefreshFunctionRole/x", `{Statement: [{Effect: Allow, Action: [secretsmanager:GetSecretValue, secretsmanager:PutSecretValue], Resource: !Ref S}]}`, false},
		{"dynamodb on every table", "ApplyFunctionRole/x", `{Statement: [{Effect: Allow, Action: dynamodb:PutItem, Resource: "*"}]}`, true},
		{"dynamodb on every index", "UploadFunctionRole/x", `{Statement: [{Effect: Allow, Action: dynamodb:Query, Resource: !Sub "${T.Arn}/index/*"}]}`, true},
		{"dynamodb wildcard action", "UploadFunctionRole/x", `{Statement: [{Effect: Allow, Action: "dynamodb:*", Resource: !GetAtt T.Arn}]}`, true},
		{"exact index", "UploadFunctionRole/x", `{Statement: [{Effect: Allow, Action: dynamodb:Query, Resource: !Sub "${T.Arn}/index/pending"}]}`, false},
		{"logs are not guarded", "IngestFunctionRole/x", `{Statement: [{Effect: Allow, Action: logs:PutLogEvents, Resource: "arn:aws:logs:*:*:*"}]}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := parseTemplate([]byte("Doc: " + tc.doc))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			problems := statementProblems(policyStatements(tpl["Doc"], tc.where), "RefreshFunctionRole")
			if got := len(problems) > 0; got != tc.bad {
				t.Errorf("problems %q, want any: %v", problems, tc.bad)
			}
		})
	}
}
