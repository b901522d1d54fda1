// Whether the client of a request is still connected, for requests that
// generate before they answer (not streamed). cpp-httplib 0.11 (Debian 12)
// gives a handler no way to ask, so the probe finds the connection's socket
// among the process's descriptors by its two addresses (unique while the
// handler runs: httplib closes the socket only after it returns) and polls
// it for a hang-up without reading anything. Linux only; where the socket
// cannot be found, the client counts as connected.
#pragma once
#include <string>

namespace moeflux::server {

class ConnectionProbe {
 public:
  ConnectionProbe(const std::string& remote_addr, int remote_port, const std::string& local_addr, int local_port);
  // False once the peer has closed or reset the connection.
  bool connected() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace moeflux::server
