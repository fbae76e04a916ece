package bench

import "testing"

func TestPacedChunksAreOneStepOfTheRate(t *testing.T) {
	t.Parallel()
	// 50 % of 48,000 events/s: a tenth of a second's items per step, one
	// request per worker, so the load is near steady instead of a burst
	// at the full rate every second.
	chunk, batch := chunking(24000, 4, 1000)
	if chunk != 2400 || batch != 600 {
		t.Errorf("paced at 24000/s: chunk %d, batch %d; want 2400 items in requests of 600", chunk, batch)
	}
	if chunk, batch := chunking(5, 4, 1000); chunk != 1 || batch != 1 {
		t.Errorf("paced at 5/s: chunk %d, batch %d; want at least one item", chunk, batch)
	}
	if chunk, batch := chunking(0, 4, 1000); chunk != 8000 || batch != 1000 {
		t.Errorf("as fast as possible: chunk %d, batch %d; want two rounds of every worker", chunk, batch)
	}
}
