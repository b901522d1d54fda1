// Files moeflux writes for the user (models, tokenizers, logits): they
// appear under their final name only when complete, and writing one never
// deletes or replaces anything moeflux was not asked to replace.
//
// - The bytes go to a temporary created with mkstemps (O_EXCL, a unique
//   name `.NAME.XXXXXX.moeflux-tmp` beside the target), so a user's own `out.gguf.partial` or any other
//   file is never touched; a failed or abandoned write removes only that
//   temporary.
// - The target must be absent, or a regular file when `replace` is set
//   (the CLI's `--force`). A symbolic link, directory, device node, FIFO or
//   socket is refused: renaming over it would swap the user's link or
//   device for a plain file.
// - commit() fsyncs the data, gives the file the usual 0666 & ~umask mode
//   (mkstemp makes 0600), checks the target again, renames, and fsyncs the
//   directory so the new name survives a crash.
#pragma once
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

namespace moeflux {

enum class Replace { No, Yes };

// Throws Error when `path` cannot be written under these rules (exists and
// !replace, not a regular file, parent directory missing). Commands call it
// before long work so a bad path fails at once.
void check_output_path(const std::string& path, Replace replace);

class OutputFile {
 public:
  OutputFile(std::string path, Replace replace);
  ~OutputFile();  // not committed: the temporary is removed
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::span<const uint8_t> bytes) { write(bytes.data(), bytes.size()); }
  void write(std::string_view s) { write(s.data(), s.size()); }
  // Publishes the file under its name; throws (and removes the temporary) on failure.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  Replace replace_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

// One call for small files (configs, tokenizers).
void write_output_file(const std::string& path, std::string_view content, Replace replace);

}  // namespace moeflux
