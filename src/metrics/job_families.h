// Per-job metrics, declared as a table: one entry per family (name, help, type) and one small
// function that writes one job's samples. The base labels (namespace, job_name) and the family
// name are bound once by JobSamples, so an entry names only its own extra labels.
//
// To add a per-job metric: add one entry to job_families() in job_families.cpp and a test in
// tests/unit/job_families_test.cpp. The derivation re-renders a job's entries whenever the model
// reports the job changed; nothing else needs to know.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "exposition/snapshot_builder.h"
#include "model/model.h"

namespace mx {

// What an entry may read about one job.
struct JobView {
  const Model& model;
  const JobState& state;
  const CountedJob* counted;    // the job's count history (nullptr before any was kept)
  std::optional<double> start;  // effective_start(): when the job started, if known

  const JobObject& job() const { return state.object; }
};

// Appends one job's samples of one family: `name{namespace=..,job_name=..,<extra>} value`.
class JobSamples {
 public:
  JobSamples(std::string& out, std::string_view family, const JobObject& job)
      : out_(out), family_(family), job_(job) {}
  void add(std::initializer_list<Label> extra, double value);
  void add(double value) { add({}, value); }

 private:
  std::string& out_;
  std::string_view family_;
  const JobObject& job_;
};

// Why a job's series are re-rendered. A change of the job re-renders every family; the other
// causes re-render only the families that name them, alone.
enum class RenderCause {
  job_changed,
  time_passed,        // the running total cost (Model::take_dirty_costs)
  telemetry_scraped,  // the values read from the job's endpoint (Model::take_dirty_telemetry)
};

struct JobFamily {
  FamilyDesc desc;
  void (*write)(const JobView& job, JobSamples& out);
  // What else re-renders this family, without the job's other families.
  RenderCause also_on = RenderCause::job_changed;
};

const std::vector<JobFamily>& job_families();

}  // namespace mx
