#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "exposition/gzip.h"
#include "exposition/negotiation.h"
#include "exposition/publisher.h"
#include "exposition/snapshot_builder.h"
#include "exposition/text_format.h"

namespace mx {
namespace {

TEST(TextFormat, Values) {
  auto v = [](double d) {
    std::string s;
    append_value(s, d);
    return s;
  };
  EXPECT_EQ(v(3), "3");
  EXPECT_EQ(v(-2), "-2");
  EXPECT_EQ(v(0.25), "0.25");
  EXPECT_EQ(v(1e300), "1e+300");
  EXPECT_EQ(v(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(v(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(v(std::nan("")), "NaN");
  EXPECT_EQ(std::stod(v(0.1 + 0.2)), 0.1 + 0.2);  // round-trips
}

TEST(TextFormat, EscapesLabelValues) {
  std::string out;
  append_sample(out, "m", {{"a", "x\"y\\z\nw"}, {"b", ""}}, 1);
  EXPECT_EQ(out, "m{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 1\n");
  out.clear();
  append_sample(out, "m", {}, 2);
  EXPECT_EQ(out, "m 2\n");
}

TEST(TextFormat, HeadersPerFormat) {
  std::string text, om;
  append_family_header(text, ExpositionFormat::text, "x_total", "Help \\ me\nplease",
                       MetricType::counter);
  append_family_header(om, ExpositionFormat::openmetrics, "x_total", "Help", MetricType::counter);
  EXPECT_EQ(text, "# HELP x_total Help \\\\ me\\nplease\n# TYPE x_total counter\n");
  EXPECT_EQ(om, "# HELP x Help\n# TYPE x counter\n");
}

TEST(TextFormat, HistogramIsCumulative) {
  std::string out;
  append_histogram(out, "h", {{"g", "T4"}}, {1, 5}, {2, 0, 3}, 42.5);
  EXPECT_EQ(out,
            "h_bucket{g=\"T4\",le=\"1\"} 2\nh_bucket{g=\"T4\",le=\"5\"} 2\n"
            "h_bucket{g=\"T4\",le=\"+Inf\"} 5\nh_sum{g=\"T4\"} 42.5\nh_count{g=\"T4\"} 5\n");
}

TEST(Snapshot, FragmentsPerObject) {
  FamilySet set;
  auto a = set.add_family({"a_total", "A.", MetricType::counter});
  auto b = set.add_family({"b", "B.", MetricType::gauge});
  auto empty = set.add_family({"never", "No samples.", MetricType::gauge});
  (void)empty;
  set.set(a, "uid2", "a_total{j=\"2\"} 2\n");
  set.set(a, "uid1", "a_total{j=\"1\"} 1\n");
  set.set(b, "uid1", "b{j=\"1\"} 7\n");
  auto s1 = set.publish(6);
  EXPECT_EQ(s1->body(ExpositionFormat::text),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{j=\"1\"} 1\na_total{j=\"2\"} 2\n"
            "# HELP b B.\n# TYPE b gauge\nb{j=\"1\"} 7\n");
  EXPECT_EQ(s1->body(ExpositionFormat::openmetrics),
            "# HELP a A.\n# TYPE a counter\na_total{j=\"1\"} 1\na_total{j=\"2\"} 2\n"
            "# HELP b B.\n# TYPE b gauge\nb{j=\"1\"} 7\n");

  // One object changes: only its fragment is replaced; the old snapshot is untouched.
  set.set(a, "uid1", "a_total{j=\"1\"} 5\n");
  set.remove_object("uid2");
  set.set(b, "uid1", "");
  auto s2 = set.publish(6);
  EXPECT_EQ(s2->body(ExpositionFormat::text),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{j=\"1\"} 5\n");
  EXPECT_NE(s1->body(ExpositionFormat::text), s2->body(ExpositionFormat::text));
  EXPECT_GT(s2->generation(), s1->generation());
  EXPECT_EQ(set.series_bytes(), std::string("a_total{j=\"1\"} 5\n").size());
}

TEST(Gzip, PrefixPlusTailIsOneValidStream) {
  std::string big;
  for (int i = 0; i < 20000; ++i)
    big += "modal_job_replicas{job_name=\"j" + std::to_string(i) + "\"} 1\n";
  const auto prefix = deflate_part(big, 6, false);
  const std::string tail = "process_open_fds 12\n";
  const std::string gz =
      gzip_header() + prefix.bytes + gzip_tail(prefix.crc32, prefix.length, tail);
  EXPECT_EQ(gzip_decompress(gz), big + tail);
  EXPECT_LT(gz.size(), big.size() / 4);
  EXPECT_EQ(gzip_decompress(gzip_compress("", 1)), "");
  EXPECT_EQ(gzip_decompress(gzip_compress("abc", 9)), "abc");
  EXPECT_THROW(gzip_decompress("not gzip"), std::runtime_error);
}

// A compressor that only stores (the per-scrape tail's) keeps zlib's smallest state; one that
// moves between level 0 and a compressing level gets the state that level needs, and so the
// same bytes as a compressor made at that level.
TEST(Gzip, AStoringCompressorKeepsZlibsSmallestState) {
  std::string big;
  for (int i = 0; i < 20000; ++i)
    big += "modal_job_replicas{job_name=\"j" + std::to_string(i) + "\"} 1\n";
  Deflater stored(0);
  Deflater six(6);
  EXPECT_LT(stored.state_bytes(), 16u * 1024);
  EXPECT_GT(six.state_bytes(), 200u * 1024);
  const auto stored_part = stored.compress(big, true);
  {  // the same bytes as zlib's full-size state at level 0
    z_stream zs{};
    ASSERT_EQ(deflateInit2(&zs, 0, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&zs, big.size()) + 16, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(big.data());
    zs.avail_in = static_cast<uInt>(big.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(out.size() - zs.avail_out);
    deflateEnd(&zs);
    EXPECT_EQ(stored_part.bytes, out);
  }
  EXPECT_LT(stored_part.bytes.size(), big.size() + big.size() / 1000);  // 5 bytes per 64 KiB
  EXPECT_EQ(gzip_decompress(gzip_header() + gzip_tail(0, 0, big)), big);

  stored.set_level(6);
  EXPECT_GT(stored.state_bytes(), 200u * 1024);
  const auto compressed = stored.compress(big, false);
  EXPECT_EQ(compressed.bytes, six.compress(big, false).bytes);
  EXPECT_LT(compressed.bytes.size(), big.size() / 4);

  six.set_level(0);
  EXPECT_LT(six.state_bytes(), 16u * 1024);
  EXPECT_EQ(six.compress(big, true).bytes, stored_part.bytes);
}

// What a gzip scrape sends: the header, every chunk's stored deflate piece, then the tail.
std::string gzip_of(const Snapshot& s, ExpositionFormat f, std::string_view tail) {
  std::string gz = gzip_header();
  for (const auto& piece : s.deflated(f)) gz += *piece;
  return gz + gzip_tail(s.crc32(f), s.size(f), tail);
}

std::string job_lines(const std::string& family, int job, int value) {
  return family + "{job_name=\"job-" + std::to_string(job) + "\",namespace=\"team-a\"} " +
         std::to_string(value) + "\n";
}

// A continuation's lines follow its family's under one HELP/TYPE; alone, it brings the header.
TEST(Snapshot, AContinuationSharesItsFamilysHeader) {
  FamilySet set;
  auto cost = set.add_family({"cost", "C.", MetricType::gauge});
  auto total = set.add_family({"cost", "C.", MetricType::gauge, /*continues=*/true});
  auto other = set.add_family({"other", "O.", MetricType::gauge});
  set.set(cost, "uid1", "cost{p=\"hourly\"} 1\n");
  set.set(total, "uid1", "cost{p=\"total\"} 9\n");
  set.set(other, "uid1", "other 3\n");
  auto s1 = set.publish(6);
  EXPECT_EQ(s1->body(ExpositionFormat::text),
            "# HELP cost C.\n# TYPE cost gauge\ncost{p=\"hourly\"} 1\ncost{p=\"total\"} 9\n"
            "# HELP other O.\n# TYPE other gauge\nother 3\n");
  EXPECT_EQ(gzip_decompress(gzip_of(*s1, ExpositionFormat::openmetrics, "# EOF\n")),
            s1->body(ExpositionFormat::openmetrics) + "# EOF\n");

  set.set(cost, "uid1", "");
  auto s2 = set.publish(6);
  EXPECT_EQ(s2->body(ExpositionFormat::text),
            "# HELP cost C.\n# TYPE cost gauge\ncost{p=\"total\"} 9\n"
            "# HELP other O.\n# TYPE other gauge\nother 3\n");
  EXPECT_EQ(gzip_decompress(gzip_of(*s2, ExpositionFormat::text, "")),
            s2->body(ExpositionFormat::text));
}

TEST(Snapshot, GzipOfChunksIsTheBody) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  auto b = set.add_family({"b_total", "B.", MetricType::counter});
  for (int i = 0; i < 5000; ++i) {
    set.set(a, "uid" + std::to_string(i), job_lines("a", i, i));
    set.set(b, "uid" + std::to_string(i), job_lines("b_total", i, 1));
  }
  auto s = set.publish(6);
  EXPECT_GT(s->plain(ExpositionFormat::text).size(), 4u) << "a large family spans chunks";
  // gzip sends a family's pieces joined: header + samples per family.
  EXPECT_EQ(s->deflated(ExpositionFormat::text).size(), 4u);
  for (auto f : {ExpositionFormat::text, ExpositionFormat::openmetrics}) {
    EXPECT_EQ(gzip_decompress(gzip_of(*s, f, "tail 1\n")), s->body(f) + "tail 1\n");
    EXPECT_EQ(s->size(f), s->body(f).size());
  }
}

// A large family is spread over chunks, each object's lines appear exactly once, and a family's
// lines stay together after its header.
TEST(Snapshot, EveryLineOnceAndFamiliesContiguous) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  auto b = set.add_family({"b", "B.", MetricType::gauge});
  for (int i = 0; i < 3000; ++i) {
    set.set(a, "uid" + std::to_string(i), job_lines("a", i, 1));
    set.set(b, "uid" + std::to_string(i), job_lines("b", i, 2));
  }
  for (int i = 0; i < 3000; i += 3) set.remove_object("uid" + std::to_string(i));
  const std::string body = set.publish(6)->body(ExpositionFormat::text);
  std::multiset<std::string> lines;
  std::vector<std::string> order;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    lines.insert(line);
    order.push_back(line);
  }
  for (int i = 0; i < 3000; ++i) {
    const std::size_t want = i % 3 == 0 ? 0 : 1;
    std::string la = job_lines("a", i, 1), lb = job_lines("b", i, 2);
    la.pop_back();
    lb.pop_back();
    EXPECT_EQ(lines.count(la), want) << la;
    EXPECT_EQ(lines.count(lb), want) << lb;
  }
  ASSERT_EQ(order.size(), 4u + 2 * 2000);
  EXPECT_EQ(order[0], "# HELP a A.");
  EXPECT_EQ(order[2002], "# HELP b B.");
  for (std::size_t i = 2; i < 2002; ++i) EXPECT_EQ(order[i].rfind("a{", 0), 0u) << i;
  for (std::size_t i = 2004; i < order.size(); ++i) EXPECT_EQ(order[i].rfind("b{", 0), 0u) << i;
}

// One changed object makes one new chunk; the next snapshot shares every other chunk with the
// previous one, and a re-render with the same lines makes none.
TEST(Snapshot, ChangeCostsOneChunk) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  for (int i = 0; i < 5000; ++i) set.set(a, "uid" + std::to_string(i), job_lines("a", i, 1));
  auto s1 = set.publish(6);
  set.set(a, "uid42", job_lines("a", 42, 7));
  auto s2 = set.publish(6);
  const auto& p1 = s1->plain(ExpositionFormat::text);
  const auto& p2 = s2->plain(ExpositionFormat::text);
  ASSERT_EQ(p1.size(), p2.size());
  std::size_t replaced = 0;
  for (std::size_t i = 0; i < p1.size(); ++i) replaced += p1[i] != p2[i];
  EXPECT_EQ(replaced, 1u);
  EXPECT_NE(s2->body(ExpositionFormat::text).find(job_lines("a", 42, 7)), std::string::npos);
  EXPECT_EQ(s1->body(ExpositionFormat::text).find(job_lines("a", 42, 7)), std::string::npos);

  set.set(a, "uid42", job_lines("a", 42, 7));
  auto s3 = set.publish(6);
  EXPECT_EQ(s3->plain(ExpositionFormat::text), p2);
  EXPECT_EQ(s3->deflated(ExpositionFormat::text), s2->deflated(ExpositionFormat::text));
  // Text and OpenMetrics share their sample chunks; only the family headers differ.
  const auto& om = s3->plain(ExpositionFormat::openmetrics);
  ASSERT_EQ(om.size(), p2.size());
  EXPECT_NE(om[0], p2[0]);
  for (std::size_t i = 1; i < om.size(); ++i) EXPECT_EQ(om[i], p2[i]);
}

// Growing and shrinking a family re-spreads it without losing or repeating a line.
TEST(Snapshot, FamilyGrowsAndShrinks) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  std::size_t most = 0;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 16000; ++i) set.set(a, "uid" + std::to_string(i), job_lines("a", i, round));
    auto grown = set.publish(1);
    most = std::max(most, grown->plain(ExpositionFormat::text).size());
    const std::string body = grown->body(ExpositionFormat::text);
    EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 16000 + 2);
    for (int i = 10; i < 16000; ++i) set.remove_object("uid" + std::to_string(i));
    auto shrunk = set.publish(1);
    EXPECT_EQ(shrunk->plain(ExpositionFormat::text).size(), 2u) << "header + one chunk";
    std::string want = "# HELP a A.\n# TYPE a gauge\n";
    std::vector<std::string> keys;
    for (int i = 0; i < 10; ++i) keys.push_back("uid" + std::to_string(i));
    std::sort(keys.begin(), keys.end());
    for (const auto& k : keys) want += job_lines("a", std::stoi(k.substr(3)), round);
    EXPECT_EQ(shrunk->body(ExpositionFormat::text), want);
  }
  EXPECT_GT(most, 8u);
}

// A batch stores each run of one key once, and of two changes to one key the later wins.
TEST(ChangeBatch, StoresARepeatedKeyOnceAndTheLaterChangeWins) {
  ChangeBatch batch;
  batch.add(0, "uid-1", "a 1\n");
  batch.add(1, "uid-1", "b 1\n");
  batch.add(0, "uid-2", "a 2\n");
  batch.add(0, "uid-1", "a 3\n");
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_EQ(batch.bytes(), 3 * std::string("uid-1").size() + 4 * 4);
  const auto& c = batch.changes();
  EXPECT_EQ(batch.key(c[1]), "uid-1");
  EXPECT_EQ(batch.lines(c[1]), "b 1\n");
  EXPECT_EQ(c[0].key_offset, c[1].key_offset);
  EXPECT_EQ(c[0].hash, c[1].hash);
  EXPECT_EQ(batch.key(c[3]), "uid-1");
  EXPECT_EQ(batch.lines(c[3]), "a 3\n");

  SnapshotBuilder builder({{"a", "A.", MetricType::gauge}, {"b", "B.", MetricType::gauge}}, 6);
  builder.apply(batch);
  EXPECT_EQ(builder.build()->body(ExpositionFormat::text),
            "# HELP a A.\n# TYPE a gauge\na 3\na 2\n# HELP b B.\n# TYPE b gauge\nb 1\n");
}

// Changes to a few objects at a time re-make the family's joined deflate piece from the fresh
// pieces and the previous joined piece: the gzip body stays the plain body, build after build.
TEST(Snapshot, GzipStaysTheBodyAcrossChanges) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  for (int i = 0; i < 6000; ++i) set.set(a, "uid" + std::to_string(i), job_lines("a", i, 1));
  set.publish(6);
  for (int round = 0; round < 20; ++round) {
    set.set(a, "uid" + std::to_string(round * 97), job_lines("a", round * 97, round + 2));
    set.remove_object("uid" + std::to_string(round * 31 + 5));
    set.set(a, "new" + std::to_string(round), job_lines("a", 90000 + round, 1));
    const auto s = set.publish(6);
    ASSERT_GT(s->plain(ExpositionFormat::text).size(), 4u);
    for (auto f : {ExpositionFormat::text, ExpositionFormat::openmetrics}) {
      ASSERT_EQ(gzip_decompress(gzip_of(*s, f, "")), s->body(f)) << round;
    }
  }
}

// A sample chunk's deflate piece is held once, inside its family's joined piece (what gzip
// scrapes send), not also beside the chunk's text. Lines of random hex barely compress, so a
// second copy of the pieces would show as another ~half of the text.
TEST(Snapshot, DeflatePiecesAreHeldOnce) {
  SnapshotBuilder builder({{"a", "A.", MetricType::gauge}}, 6);
  ChangeBatch batch;
  std::uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 2000; ++i) {
    std::string lines = "a{h=\"";
    for (int k = 0; k < 1000; ++k) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift: reproducible noise
      lines += "0123456789abcdef"[x & 15];
    }
    batch.add(0, "uid" + std::to_string(i), lines + "\"} 1\n");
  }
  builder.apply(batch);
  const auto s = builder.build();
  std::size_t deflated = 0;
  for (const auto& piece : s->deflated(ExpositionFormat::text)) deflated += piece->size();
  const std::size_t text = builder.series_bytes();
  ASSERT_GT(deflated, text / 3);
  EXPECT_LT(builder.memory_bytes(), text + deflated + deflated / 2);
}

// A change re-joins the deflate pieces of its bucket's group only: every other group's joined
// piece is the previous snapshot's, shared (remaking the family's whole joined piece copied and
// allocated ~0.7 MB per changed job at 10k jobs). Groups are laid out again when the family
// shrinks or grows, and gzip stays the body throughout.
TEST(Snapshot, AChangeRejoinsOnlyItsGroup) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  std::uint64_t x = 88172645463325252ull;
  auto noise = [&x] {  // hex that barely compresses, so that the family spans many groups
    std::string out;
    for (int k = 0; k < 200; ++k) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      out += "0123456789abcdef"[x & 15];
    }
    return out;
  };
  auto lines = [&](int i) {
    return "a{h=\"" + noise() + "\",i=\"" + std::to_string(i) + "\"} 1\n";
  };
  for (int i = 0; i < 4000; ++i) set.set(a, "uid" + std::to_string(i), lines(i));
  const auto before = set.publish(6);
  const auto& old_pieces = before->deflated(ExpositionFormat::text);
  ASSERT_GT(old_pieces.size(), 4u) << "the family spans several groups";

  set.set(a, "uid17", lines(17));
  const auto after = set.publish(6);
  const auto& new_pieces = after->deflated(ExpositionFormat::text);
  ASSERT_EQ(new_pieces.size(), old_pieces.size());
  std::size_t remade = 0;
  for (std::size_t i = 0; i < new_pieces.size(); ++i) remade += new_pieces[i] != old_pieces[i];
  EXPECT_EQ(remade, 1u);
  EXPECT_EQ(gzip_decompress(gzip_of(*after, ExpositionFormat::text, "")),
            after->body(ExpositionFormat::text));

  for (int i = 10; i < 4000; ++i) set.remove_object("uid" + std::to_string(i));  // shrinks
  const auto small = set.publish(6);
  EXPECT_LT(small->deflated(ExpositionFormat::text).size(), old_pieces.size());
  for (auto f : {ExpositionFormat::text, ExpositionFormat::openmetrics}) {
    EXPECT_EQ(gzip_decompress(gzip_of(*small, f, "")), small->body(f));
  }
  for (int i = 10; i < 4000; ++i) set.set(a, "uid" + std::to_string(i), lines(i));  // grows
  const auto large = set.publish(6);
  EXPECT_GT(large->deflated(ExpositionFormat::text).size(), 4u);
  for (auto f : {ExpositionFormat::text, ExpositionFormat::openmetrics}) {
    EXPECT_EQ(gzip_decompress(gzip_of(*large, f, "")), large->body(f));
  }
}

// Random edits, removals and bursts that grow and shrink the families, publish after publish:
// every line set is in the body exactly once, and the gzip pieces (joined per group of
// buckets, re-laid out on every resize) always inflate to the body.
TEST(Snapshot, RandomChangesKeepBodyAndGzipTrue) {
  FamilySet set;
  const FamilyId families[2] = {set.add_family({"a", "A.", MetricType::gauge}),
                                set.add_family({"b", "B.", MetricType::gauge})};
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&x] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  std::map<std::pair<FamilyId, std::string>, std::string> expected;  // (family, key) -> lines
  auto set_random = [&](FamilyId f, const std::string& key) {
    std::string lines = std::string(f == families[0] ? "a" : "b") + "{k=\"" + key + "\",h=\"";
    const int length = 8 + static_cast<int>(next() % 400);
    for (int i = 0; i < length; ++i) lines += "0123456789abcdef"[next() & 15];
    lines += "\"} 1\n";
    set.set(f, key, lines);
    expected[{f, key}] = lines;
  };
  for (int round = 0; round < 100; ++round) {
    const std::uint64_t kind = next() % 10;
    if (kind == 0) {  // a burst of new keys: the families grow
      for (int i = 0; i < 1500; ++i)
        set_random(families[next() % 2], "k" + std::to_string(next() % 4000));
    } else if (kind == 1) {  // most keys go: the families shrink
      for (auto it = expected.begin(); it != expected.end();) {
        if (next() % 8 != 0) {
          set.set(it->first.first, it->first.second, {});
          it = expected.erase(it);
        } else {
          ++it;
        }
      }
    } else {  // a few edits and removals
      for (int i = 0; i < 20; ++i) {
        const FamilyId f = families[next() % 2];
        const std::string key = "k" + std::to_string(next() % 4000);
        if (next() % 4 == 0) {
          set.set(f, key, {});
          expected.erase({f, key});
        } else {
          set_random(f, key);
        }
      }
    }
    const auto s = set.publish(6);
    const std::string body = s->body(ExpositionFormat::text);
    std::vector<std::string> got, want;
    std::istringstream lines(body);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line[0] != '#') got.push_back(line + "\n");
    }
    for (const auto& [key, lines_of] : expected) want.push_back(lines_of);
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    ASSERT_EQ(got, want) << "round " << round;
    ASSERT_EQ(gzip_decompress(gzip_of(*s, ExpositionFormat::text, "")), body) << "round " << round;
  }
}

TEST(Snapshot, GzipLevelChangeRecompresses) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  for (int i = 0; i < 500; ++i) set.set(a, "uid" + std::to_string(i), job_lines("a", i, 1));
  auto s1 = set.publish(1);
  auto s9 = set.publish(9);
  // Every piece was compressed again: level 9 finds more than level 1 in the same text.
  auto deflated_size = [](const Snapshot& s) {
    std::size_t n = 0;
    for (const auto& p : s.deflated(ExpositionFormat::text)) n += p->size();
    return n;
  };
  EXPECT_LT(deflated_size(*s9), deflated_size(*s1));
  EXPECT_EQ(s1->body(ExpositionFormat::text), s9->body(ExpositionFormat::text));
  EXPECT_EQ(gzip_decompress(gzip_of(*s9, ExpositionFormat::text, "")),
            s9->body(ExpositionFormat::text));
}

// The value of a label-less self metric declared in `registry`.
double self_metric(prometheus::Registry& registry, const std::string& name) {
  for (const auto& f : registry.Collect()) {
    if (f.name != name || f.metric.size() != 1) continue;
    const auto& m = f.metric.front();
    return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  ADD_FAILURE() << name << " is not declared";
  return -1;
}

TEST(Publisher, BuildsOnItsThreadWhatWasSubmitted) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  prometheus::Registry registry;
  Publisher publisher(set.families(), 6, registry);
  EXPECT_EQ(publisher.current()->body(ExpositionFormat::text), "");
  const auto first = publisher.current()->generation();
  for (int round = 1; round <= 49; ++round) {
    set.set(a, "uid" + std::to_string(round % 7), job_lines("a", round % 7, round));
    publisher.submit(set.take_changes(), 6);
  }
  publisher.flush();
  const auto s = publisher.current();
  EXPECT_GT(s->generation(), first);
  for (int job = 0; job < 7; ++job) {
    const int last = 49 - (49 - job) % 7;  // the last round that wrote this job
    EXPECT_NE(s->body(ExpositionFormat::text).find(job_lines("a", job, last)), std::string::npos)
        << job;
  }
  EXPECT_GE(self_metric(registry, "modal_exporter_snapshot_builds_total"), 1);
  EXPECT_EQ(self_metric(registry, "modal_exporter_snapshot_chunks"), 1);
  EXPECT_EQ(self_metric(registry, "modal_exporter_snapshot_size_bytes"),
            static_cast<double>(s->size(ExpositionFormat::text)));
}

// A fleet handed over in slices: each slice is merged as it comes, and the
// snapshot is built once, by the final slice.
TEST(Publisher, SlicesBuildOnceAtTheFinalOne) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  prometheus::Registry registry;
  Publisher publisher(set.families(), 1, registry);
  const auto start = publisher.current();
  for (int slice = 0; slice < 10; ++slice) {
    for (int i = slice * 300; i < (slice + 1) * 300; ++i) {
      set.set(a, "uid" + std::to_string(i), job_lines("a", i, 1));
    }
    publisher.submit(set.take_changes(), 1, slice == 9);
    publisher.flush();
    if (slice < 9) {
      EXPECT_EQ(publisher.current(), start) << "no snapshot before the last slice";
    }
  }
  const std::string body = publisher.current()->body(ExpositionFormat::text);
  EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 3000 + 2);
  EXPECT_EQ(self_metric(registry, "modal_exporter_snapshot_builds_total"), 1);
}

// A slice's batch comes back emptied with its buffers, for the next slice to be written into;
// once the last slice is queued no spare is kept.
TEST(Publisher, HandsBackASlicesBuffersUntilTheLastSlice) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  prometheus::Registry registry;
  Publisher publisher(set.families(), 1, registry);
  for (int i = 0; i < 300; ++i) set.set(a, "uid" + std::to_string(i), job_lines("a", i, 1));
  const std::size_t slice_bytes = set.take_changes().bytes();
  auto has_buffers = [&](const ChangeBatch& b) { return b.capacity() >= slice_bytes; };
  EXPECT_FALSE(has_buffers(publisher.take_spare_batch())) << "nothing applied yet";
  for (int i = 0; i < 300; ++i) set.set(a, "uid" + std::to_string(i), job_lines("a", i, 1));
  publisher.submit(set.take_changes(), 1, /*final=*/false);
  publisher.flush();
  ChangeBatch spare = publisher.take_spare_batch();
  EXPECT_TRUE(spare.empty());
  EXPECT_TRUE(has_buffers(spare));
  EXPECT_FALSE(has_buffers(publisher.take_spare_batch())) << "handed out once";

  set.set(a, "uid1", job_lines("a", 1, 2));
  publisher.submit(set.take_changes(std::move(spare)), 1, /*final=*/false);
  set.set(a, "uid2", job_lines("a", 2, 2));
  publisher.submit(set.take_changes(), 1, /*final=*/true);
  publisher.flush();
  EXPECT_FALSE(has_buffers(publisher.take_spare_batch())) << "no slice follows the last";
  const std::string body = publisher.current()->body(ExpositionFormat::text);
  EXPECT_NE(body.find(job_lines("a", 1, 2)), std::string::npos);
  EXPECT_NE(body.find(job_lines("a", 2, 2)), std::string::npos);
}

TEST(Negotiation, Format) {
  EXPECT_EQ(negotiate_format(""), ExpositionFormat::text);
  EXPECT_EQ(negotiate_format("text/plain"), ExpositionFormat::text);
  EXPECT_EQ(negotiate_format("application/json"), ExpositionFormat::text);
  // What Prometheus 2.42 sends.
  EXPECT_EQ(negotiate_format("application/openmetrics-text;version=1.0.0,application/"
                             "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"
                             "*/*;q=0.1"),
            ExpositionFormat::openmetrics);
  EXPECT_EQ(negotiate_format("application/openmetrics-text; version=1.0.0"),
            ExpositionFormat::openmetrics);
  EXPECT_EQ(negotiate_format("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
            ExpositionFormat::text);
  EXPECT_EQ(negotiate_format("application/openmetrics-text;version=2.0.0"), ExpositionFormat::text);
  EXPECT_EQ(negotiate_format("application/openmetrics-text;q=0"), ExpositionFormat::text);
}

TEST(Negotiation, Gzip) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("deflate, gzip;q=0.5"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_FALSE(accepts_gzip(""));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0, *"));
}

}  // namespace
}  // namespace mx
