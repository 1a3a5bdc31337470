// Package infra holds what deploying pinlist needs beside template.yaml: the
// SAM transform helper (samtransform.py) and the alarm, metric and dashboard
// notes (README.md). It has no code of its own; its tests prove the template
// with cfn-lint, with the SAM transform, and with the structural rules
// cfn-lint cannot check (build targets, the changes queue and its DLQ, the
// retained legacy FIFO queues, IAM, environment names, the dashboard's JSON
// and that the functions emit every metric it reads), round-trip the sample
// events in events/ through aws-lambda-go's types, and run the Makefile's
// install of moto_server and cfn-lint against fake python3 and pip
// (maketools_test.go).
package infra
