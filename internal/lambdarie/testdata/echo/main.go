// Command echo is a Lambda function for lambdarie's tests: it answers with
// what it was sent and what it sees of its environment, fails when asked to,
// and exits at start when ECHO_EXIT_AT_INIT is set.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Say  string `json:"say"`
	Fail string `json:"fail"`
	Env  string `json:"env"`
}

type response struct {
	Said        string `json:"said"`
	Env         string `json:"env"`
	EnvSet      bool   `json:"envSet"`
	Function    string `json:"function"`
	HasDeadline bool   `json:"hasDeadline"`
	PID         int    `json:"pid"`
}

func handle(ctx context.Context, req request) (response, error) {
	if req.Fail != "" {
		return response{}, errors.New(req.Fail)
	}
	_, hasDeadline := ctx.Deadline()
	env, set := os.LookupEnv(req.Env)
	return response{
		Said:        req.Say,
		Env:         env,
		EnvSet:      set,
		Function:    lambdacontext.FunctionName,
		HasDeadline: hasDeadline,
		PID:         os.Getpid(),
	}, nil
}

func main() {
	if os.Getenv("ECHO_EXIT_AT_INIT") != "" {
		fmt.Fprintln(os.Stderr, "echo: exiting at init as asked")
		os.Exit(3)
	}
	lambda.Start(handle)
}
