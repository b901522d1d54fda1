// The weights files of a loaded model, watched so that an expert source can
// refuse to serve once any of them changed since it was opened: the dense
// weights were copied at load, the experts come from the files, and mixing
// two versions of a model gives garbage without an error.
//
// check_due() is cheap (one non-blocking read of the inotify queue, see
// FileWatch, plus an atomic per guarded map), so the sources ask on every
// acquire, i.e. every MoE layer of every step; the full check (fstat + stat
// per file, MappedFile::changed) runs only when an event or the backstop
// says so. Where inotify is unavailable every check is full.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "experts/file_watch.h"
#include "format/tensor_table.h"

namespace moeflux {

class MappedFile;

struct ModelFileChange {
  std::string path;
  std::string what;
};

class ModelFiles {
 public:
  // Every file holding a tensor of `st` (through the MappedFiles behind the
  // tensors' bytes). With guard_maps, loads from those maps past a shrunk
  // file's end read zeros instead of raising SIGBUS (MappedFile::guard) and
  // the next check reports the file.
  ModelFiles(const TensorTable& st, bool guard_maps,
             std::chrono::milliseconds backstop = std::chrono::milliseconds(1000));

  // True when a full check should run now. Not thread-safe (callers lock).
  bool check_due();
  // Every file that changed since it was opened and how. Thread-safe.
  std::vector<ModelFileChange> check() const;
  // check_due() and, if due, check(); remembers a change so that every
  // later call checks again (a file put back is fine again). Not thread-safe.
  std::vector<ModelFileChange> poll();

  const std::vector<std::string>& paths() const { return paths_; }
  const FileWatch& watch() const { return *watch_; }
  uint64_t full_checks() const { return full_checks_; }

 private:
  std::vector<const MappedFile*> files_;
  std::vector<std::string> paths_;
  std::unique_ptr<FileWatch> watch_;
  bool changed_ = false;
  uint64_t full_checks_ = 0;
};

// "expert E of layer L: PATH changed since it was opened (WHAT); reload the model"
// for the first change; the others are appended.
std::string describe_changes(int layer, int expert, const std::vector<ModelFileChange>& changes);

}  // namespace moeflux
