package robustness

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// envNoBroken skips TestCatchesUnsafeAck.
const envNoBroken = "CAIRN_ROBUSTNESS_SKIP_BROKEN"

// TestCatchesUnsafeAck shows the suite can fail: it runs the kill-all
// scenario, in a child go test, against the deliberately broken build
// (-tags cairn_unsafe_ack: a synced commit returns once the write is in
// memory), and requires that run to fail with acknowledged writes lost.
// A suite that passed there would be checking nothing.
func TestCatchesUnsafeAck(t *testing.T) {
	if os.Getenv(envNoBroken) != "" {
		t.Skipf("%s is set", envNoBroken)
	}
	if os.Getenv("CAIRN_TEST_BUILD_TAGS") != "" || os.Getenv("CAIRN_TEST_CAIRN_BINARY") != "" {
		t.Skip("this run already tests another build of cairn")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to run the broken build's suite: %v", err)
	}
	start := time.Now()
	cmd := exec.Command(gobin, "test", "-count=1", "-run", "^TestRobustness$/^kill-all$", ".")
	cmd.Env = append(os.Environ(), "CAIRN_TEST_BUILD_TAGS=cairn_unsafe_ack", envSeed+"=1", envArtifacts+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("the suite against the broken build took %v", time.Since(start).Round(time.Second))
	if err == nil {
		t.Fatalf("the kill-all scenario passed against a build that acknowledges writes before they are durable:\n%s", out)
	}
	if !strings.Contains(string(out), "acknowledged write lost") {
		t.Fatalf("the broken build failed, but not because acknowledged writes were lost:\n%s", out)
	}
	t.Logf("the broken build lost acknowledged writes (%d reported)", strings.Count(string(out), "acknowledged write lost"))
}
