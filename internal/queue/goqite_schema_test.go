package queue

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maragu.dev/goqite"
)

// TestGoqiteSchemaMatchesModule guards the embedded copy of goqite's schema
// against a goqite upgrade that changes it.
func TestGoqiteSchemaMatchesModule(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH (install Go from https://go.dev/dl/): %v", err)
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", "maragu.dev/goqite").Output()
	if err != nil {
		t.Fatalf("locate the goqite module: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "schema_sqlite.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if goqiteSchema != string(want) {
		t.Errorf("schema_sqlite.sql differs from the goqite module's; copy it again and check Local's statements:\n%s", want)
	}
}

// TestLocalGoqiteCompatible shows that Local's storage is goqite's: a plain
// goqite.Queue reads a group in send order, and Local honours goqite's
// visibility timeout as a group lock.
func TestLocalGoqiteCompatible(t *testing.T) {
	ctx := context.Background()
	l, _ := openTestLocal(t, LocalOptions{Now: time.Now})
	send(t, l, msgs("a", 0, 3)...)
	q := goqite.New(goqite.NewOpts{DB: l.db, Name: localLivePrefix + "a", Timeout: time.Minute})
	m, err := q.Receive(ctx)
	if err != nil || m == nil {
		t.Fatalf("goqite Receive = %v, %v", m, err)
	}
	if string(m.Body) != "a/0000" {
		t.Errorf("goqite received %q first, want a/0000", m.Body)
	}
	if b := receive(t, l, MaxBatch); len(b.Messages) != 0 {
		t.Errorf("Local delivered %v while goqite holds a/0000", bodies(b))
	}
	if err := q.Delete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	// goqite's Delete does not settle Local's group row: the row's ready time
	// is only a hint, and the next receive corrects it.
	if _, err := l.db.Exec(`update pinlist_queue_groups set ready_at = ?`, localStamp(time.Now())); err != nil {
		t.Fatal(err)
	}
	b := receive(t, l, MaxBatch)
	if got := strings.Join(bodies(b), " "); got != "a/0001 a/0002" {
		t.Errorf("Local after goqite's delete: %q, want a/0001 a/0002", got)
	}
}
