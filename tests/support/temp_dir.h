// A fresh directory under the system temp dir, removed with everything in it at scope end.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace mx::testing {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("mx-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `content` to `name` atomically (like a projected token's symlink swap); the path.
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    const auto tmp = path_ / (name + ".tmp");
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << content;
    std::filesystem::rename(tmp, p);
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace mx::testing
