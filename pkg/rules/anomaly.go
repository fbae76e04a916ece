package rules

import (
	"math"
	"time"
)

// Defaults of AnomalyConfig.
const (
	DefaultWarmup  = 150
	DefaultSeason  = Duration(24 * time.Hour)
	seasonBuckets  = 48  // buckets of the seasonal profile (30 min for a day)
	recentLen      = 3   // points averaged by the short-term score mean
	levelAlpha     = 0.1 // fast robust level
	trendBeta      = 0.1 // Holt trend, error-correction form
	trendDamping   = 0.98
	devAlpha       = 0.05
	shortVarAlpha  = 0.1
	longVarAlpha   = 0.01
	rawAlpha       = 0.002 // long-term distribution of raw scores
	huberC         = 3.0   // residuals are clipped at huberC σ before updates
	zFull          = 8.0   // a point residual of zFull σ scores 1 ...
	zDead          = 3.0   // ... and one below zDead σ scores 0
	cusumK         = 1.0   // CUSUM drift, σ
	cusumH         = 20.0  // CUSUM decision interval, σ
	minRawMean     = 0.03  // Numenta's lower bounds on the raw score distribution
	minRawStd      = 0.0173
	likelihoodEps  = 1e-10  // log score: Q = 1e-5 scores 0.5, Q = 1e-10 scores 1
	madToSigma     = 1.2533 // σ = 1.2533 × mean absolute deviation (Gaussian)
	varRatioLow    = 2.0    // variance ratios below this score 0 ...
	varRatioFull   = 8.0    // ... and at or above this score 1
	relativeFloor  = 1e-3   // σ floor relative to the level
	absoluteFloor  = 1e-9
	seasonMinCover = 1.0 // seasons of history before the seasonal baseline counts
	seasonUseful   = 2.0 // the profile counts while its residual ≤ 2 × the level's
	seasAbsAlpha   = 0.01
)

// Model is a streaming anomaly detector for one series: no labelled
// training data, constant memory (about 60 numbers), one Update per point.
// It is plain data so it can be checkpointed as JSON.
//
// Algorithm (documented with sources in docs/detector.md):
//
//  1. Robust online residuals. A fast level (EWMA, α = 0.1) and scale
//     (EW mean absolute deviation) are updated with Huber-clipped residuals
//     (clip at 3σ; Huber 1964), so single spikes do not drag the baseline
//     and a level shift is followed gradually, keeping it visible. A
//     seasonal profile (48 buckets per season, default one day) holds a
//     robust mean and deviation per time of day; once a full season has
//     been seen, a point's residual z is the smaller of its z against the
//     level and against its bucket, so a normal daily rise is not an
//     anomaly (Hochenbaum et al. 2017, seasonal-hybrid ESD, use the same
//     seasonal-residual idea offline). The profile is used only while it
//     predicts about as well as the level (its mean absolute residual at
//     most twice the level's), so a trend or a random walk, where
//     yesterday says little about today, is not an endless anomaly.
//  2. Change detection. A two-sided CUSUM (Page 1954) on the seasonal
//     residual catches sustained deviations from the daily pattern (a
//     missing peak); the ratio of a short-term (α = 0.1) to a long-term
//     (α = 0.01) residual variance catches variance changes in both
//     directions (a noisier series, or a sensor that flat-lines).
//  3. Raw score = max(z/8, variance-ratio score, CUSUM/h) in [0, 1].
//  4. Anomaly likelihood (Ahmad, Lavin, Purdy, Agha 2017, "Unsupervised
//     real-time anomaly detection for streaming data", Neurocomputing 262):
//     the raw scores' long-term mean and deviation are tracked (EW, with
//     Numenta's lower bounds 0.03 and 0.0173); the score of a point is
//     1 − Q((m − μ)/σ), where m is the mean of the last 3 raw scores and Q
//     the Gaussian tail. A series whose raw scores are always high (noisy
//     by nature) thus needs a larger surprise than a calm one.
//
// The first Warmup points only train the model and score 0.
type Model struct {
	Warmup   int   `json:"warmup"`
	SeasonMs int64 `json:"season_ms,omitempty"`
	N        int   `json:"n"`
	FirstT   int64 `json:"first_t"`
	LastT    int64 `json:"last_t"`

	Level    float64 `json:"level"`
	Trend    float64 `json:"trend"`
	Dev      float64 `json:"dev"`
	ShortVar float64 `json:"short_var"`
	LongVar  float64 `json:"long_var"`
	CusumPos float64 `json:"cusum_pos"`
	CusumNeg float64 `json:"cusum_neg"`
	// SeasAbs is the EW mean absolute residual against the seasonal
	// profile; the profile is used only while it predicts about as well as
	// the level (SeasAbs <= seasonUseful × Dev), so trends and random walks,
	// where yesterday says little about today, do not look like anomalies.
	SeasAbs float64 `json:"seas_abs"`
	// Step is the EW mean interval between points, ms.
	Step    float64  `json:"step"`
	Buckets []Bucket `json:"buckets,omitempty"`

	RawMean float64   `json:"raw_mean"`
	RawVar  float64   `json:"raw_var"`
	RawN    int       `json:"raw_n"`
	Recent  []float64 `json:"recent"`
}

// Bucket is the robust mean and mean absolute deviation of the points in
// one time-of-day slot of the season.
type Bucket struct {
	Mean float64 `json:"m"`
	Dev  float64 `json:"d"`
	N    int     `json:"n"`
}

// NewModel returns an untrained model.
func NewModel(cfg AnomalyConfig) *Model {
	m := &Model{Warmup: cfg.Warmup}
	if m.Warmup == 0 {
		m.Warmup = DefaultWarmup
	}
	if !cfg.NoSeason {
		s := cfg.Season
		if s == 0 {
			s = DefaultSeason
		}
		m.SeasonMs = s.Ms()
		m.Buckets = make([]Bucket, seasonBuckets)
	}
	return m
}

// Update feeds the point (t ms, x) and returns its anomaly score in [0, 1].
// Points should arrive in time order; a point older than the last one is
// scored but does not move the seasonal clock backwards. NaN and ±Inf
// score 0 and are ignored.
func (m *Model) Update(t int64, x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	if m.N == 0 {
		m.Level, m.FirstT, m.LastT = x, t, t
	}
	if dt := float64(t - m.LastT); dt > 0 {
		if m.Step == 0 {
			m.Step = dt
		} else {
			m.Step += 0.05 * (dt - m.Step)
		}
	}
	m.N++
	floor := absoluteFloor + relativeFloor*math.Abs(m.Level)
	sigma := math.Max(madToSigma*m.Dev, floor)
	pred := m.Level + trendDamping*m.Trend
	r := x - pred
	z := math.Abs(r) / sigma

	// Seasonal residual.
	zs, seasonal := 0.0, false
	var b *Bucket
	if m.SeasonMs > 0 {
		width := m.SeasonMs / int64(len(m.Buckets))
		idx := int(((t%m.SeasonMs)+m.SeasonMs)%m.SeasonMs) / int(max(width, 1))
		b = &m.Buckets[min(idx, len(m.Buckets)-1)]
		if b.N >= 2 && float64(t-m.FirstT) >= seasonMinCover*float64(m.SeasonMs) {
			ss := math.Max(madToSigma*b.Dev, floor)
			zs = (x - b.Mean) / ss
			if m.SeasAbs == 0 {
				m.SeasAbs = math.Abs(x - b.Mean)
			}
			seasonal = m.SeasAbs <= seasonUseful*m.Dev+floor
			if seasonal {
				z = math.Min(z, math.Abs(zs))
			}
			m.SeasAbs += seasAbsAlpha * (math.Min(math.Abs(x-b.Mean), huberC*ss) - m.SeasAbs)
		}
	}

	// Variance ratio of the residual, short against long term. Rises
	// score from a ratio of 2 (σ × 1.4) to 8; falls, rarer as anomalies and
	// common at the turns of a smooth pattern, from 1/4 to 1/16.
	varScore := 0.0
	if m.N > 2*m.Warmup/3 {
		vr := (m.ShortVar + floor*floor) / (m.LongVar + floor*floor)
		if vr >= 1 {
			varScore = clamp01((math.Log(vr) - math.Log(varRatioLow)) / (math.Log(varRatioFull) - math.Log(varRatioLow)))
		} else {
			varScore = clamp01((-math.Log(vr) - 2*math.Log(varRatioLow)) / (2*math.Log(varRatioFull) - 2*math.Log(varRatioLow)))
		}
	}

	// CUSUM of the seasonal residual (sustained pattern changes).
	if !seasonal {
		m.CusumPos, m.CusumNeg = 0, 0
	} else {
		m.CusumPos = math.Min(math.Max(0, m.CusumPos+zs-cusumK), 2*cusumH)
		m.CusumNeg = math.Min(math.Max(0, m.CusumNeg-zs-cusumK), 2*cusumH)
	}

	raw := math.Max(clamp01((z-zDead)/(zFull-zDead)), varScore)
	raw = math.Max(raw, math.Min(math.Max(m.CusumPos, m.CusumNeg)/cusumH, 1))

	score := 0.0
	if m.N > m.Warmup {
		m.Recent = append(m.Recent, raw)
		if len(m.Recent) > recentLen {
			m.Recent = m.Recent[len(m.Recent)-recentLen:]
		}
		mean := 0.0
		for _, v := range m.Recent {
			mean += v
		}
		mean /= float64(len(m.Recent))
		mu := math.Max(m.RawMean, minRawMean)
		sd := math.Max(math.Sqrt(m.RawVar), minRawStd)
		q := 0.5 * math.Erfc(((mean-mu)/sd)/math.Sqrt2) // Gaussian tail Q
		score = clamp01(math.Log(q+likelihoodEps) / math.Log(likelihoodEps))
	}
	if m.N > m.Warmup/3 {
		m.RawN++
		a := math.Max(rawAlpha, 1/float64(m.RawN))
		d := raw - m.RawMean
		m.RawMean += a * d
		m.RawVar = (1 - a) * (m.RawVar + a*d*d)
	}

	// Learn: robust (Huber-clipped) updates; plain averages while young.
	young := m.N <= 10
	clip := func(v, s float64) float64 {
		if young {
			return v
		}
		return math.Max(-huberC*s, math.Min(huberC*s, v))
	}
	rc := clip(r, sigma)
	la, da := math.Max(levelAlpha, 1/float64(m.N)), math.Max(devAlpha, 1/float64(m.N))
	m.Level = pred + la*rc
	m.Trend = trendDamping*m.Trend + trendBeta*la*rc
	m.Dev += da * (math.Abs(rc) - m.Dev)
	r2 := r * r
	m.ShortVar += math.Max(shortVarAlpha, 1/float64(m.N)) * (r2 - m.ShortVar)
	m.LongVar += math.Max(longVarAlpha, 1/float64(m.N)) * (math.Min(r2, 16*sigma*sigma) - m.LongVar)
	if b != nil {
		ba := 1 / float64(b.N+1)
		if m.Step > 0 {
			perVisit := float64(m.SeasonMs/int64(len(m.Buckets))) / m.Step // points per bucket per season
			ba = math.Max(ba, 1/(3*math.Max(perVisit, 1)))
		}
		br := x - b.Mean
		if b.N >= 3 {
			br = math.Max(-huberC*madToSigma*b.Dev-floor, math.Min(huberC*madToSigma*b.Dev+floor, br))
		}
		b.Mean += ba * br
		b.Dev += ba * (math.Abs(br) - b.Dev)
		b.N++
	}
	if t > m.LastT {
		m.LastT = t
	}
	return score
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }
