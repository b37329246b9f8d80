-- wrk's summary as one machine-readable line (wrk -s bench/lib/wrk-report.lua ...): request
-- count, duration, errors and latency percentiles in microseconds, which its human-readable
-- output rounds and spreads over several lines.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "wrk_result requests=%d duration_us=%d bytes=%d errors=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
