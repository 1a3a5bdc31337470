package awsshape

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
)

// ScheduleDriver invokes a function on a Schedule event source's rate.
type ScheduleDriver struct {
	every   time.Duration
	fn      Function
	handler func(ctx context.Context) error
	log     *slog.Logger
	runs    atomic.Int64
	errs    atomic.Int64
	held    atomic.Bool
}

// Hold skips (true) or resumes (false) the scheduled invocations.
func (s *ScheduleDriver) Hold(held bool) { s.held.Store(held) }

// NewSchedule drives src for fn; every, when not zero, replaces the
// template's rate (say so in any report: it is not the template's).
func NewSchedule(src ScheduleSource, fn Function, every time.Duration, handler func(ctx context.Context) error, logger *slog.Logger) (*ScheduleDriver, error) {
	if handler == nil {
		return nil, fmt.Errorf("new schedule driver for %s: handler is required", fn.Name)
	}
	if every < 0 {
		return nil, fmt.Errorf("new schedule driver for %s: every %s is negative", fn.Name, every)
	}
	if every == 0 {
		every = src.Every
	}
	if every <= 0 {
		return nil, fmt.Errorf("new schedule driver for %s: the schedule has no period", fn.Name)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &ScheduleDriver{every: every, fn: fn, handler: handler, log: logger}, nil
}

// Every is the period the driver runs at.
func (s *ScheduleDriver) Every() time.Duration { return s.every }

// Runs and Errors count the invocations and those that failed.
func (s *ScheduleDriver) Runs() int64   { return s.runs.Load() }
func (s *ScheduleDriver) Errors() int64 { return s.errs.Load() }

// Run invokes the handler every period (the first after one period) until
// ctx ends.
func (s *ScheduleDriver) Run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.held.Load() {
			continue
		}
		if err := s.Invoke(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduled invocation failed", "function", s.fn.Name, "error", err.Error())
		}
	}
}

// Invoke runs the handler once, as the schedule would.
func (s *ScheduleDriver) Invoke(ctx context.Context) (err error) {
	n := s.runs.Add(1)
	ctx, cancel := lambdaContext(ctx, s.fn, "schedule-"+strconv.FormatInt(n, 10))
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("function %s panicked: %v", s.fn.Name, r)
		}
		if err != nil {
			s.errs.Add(1)
		}
	}()
	return s.handler(ctx)
}
