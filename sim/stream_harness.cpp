// stream_harness: drives a FINN-style AXI4-Stream top (ap_clk, ap_rst_n, in0_V_T*, out0_V_T*)
// built by Verilator with --prefix Vtop. Input beats come from a file of hex lines; output beats go
// to a file of "<hex> <cycle>" lines. Random input gaps and output backpressure (probabilities
// +gap= and +bp=, seed +seed=), a cycle limit +max_cycles=, and the number of output beats to
// wait for +beats=. Exit code 0 when all beats arrived, 2 on timeout, 3 on a protocol error
// (TVALID dropped or TDATA changed before its handshake).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

using Words = std::vector<uint32_t>;

static Words parse_hex(const std::string& s) {
  Words w;
  int n = static_cast<int>(s.size());
  for (int end = n; end > 0; end -= 8) {
    int start = end - 8 < 0 ? 0 : end - 8;
    w.push_back(static_cast<uint32_t>(std::strtoul(s.substr(start, end - start).c_str(), nullptr, 16)));
  }
  return w;
}

static std::string to_hex(const Words& w) {
  std::string s;
  char buf[16];
  for (int i = static_cast<int>(w.size()) - 1; i >= 0; --i) {
    std::snprintf(buf, sizeof buf, "%08x", w[i]);
    s += buf;
  }
  return s;
}

// Verilator's port types: CData/SData/IData (<= 32 bits), QData (<= 64), VlWide<N> (wider)
template <typename T> static void put(T& port, const Words& w) {
  uint64_t v = w.empty() ? 0 : w[0];
  if (sizeof(T) > 4 && w.size() > 1) v |= static_cast<uint64_t>(w[1]) << 32;
  port = static_cast<T>(v);
}
template <std::size_t N> static void put(VlWide<N>& port, const Words& w) {
  for (std::size_t i = 0; i < N; ++i) port[i] = i < w.size() ? w[i] : 0;
}
template <typename T> static Words get(const T& port) {
  uint64_t v = static_cast<uint64_t>(port);
  Words w{static_cast<uint32_t>(v)};
  if (sizeof(T) > 4) w.push_back(static_cast<uint32_t>(v >> 32));
  return w;
}
template <std::size_t N> static Words get(const VlWide<N>& port) {
  Words w(N);
  for (std::size_t i = 0; i < N; ++i) w[i] = port[i];
  return w;
}

static std::string arg(const char* name, const char* dflt) {
  const char* v = Verilated::commandArgsPlusMatch(name);
  std::string s = v ? v : "";
  std::string key = std::string("+") + name + "=";
  return s.rfind(key, 0) == 0 ? s.substr(key.size()) : std::string(dflt);
}

int main(int argc, char** argv) {
  auto ctx = std::make_unique<VerilatedContext>();
  ctx->commandArgs(argc, argv);
  std::ifstream in(arg("in", "in.hex"));
  std::vector<Words> beats;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) beats.push_back(parse_hex(line));
  }
  const double gap = std::atof(arg("gap", "0").c_str());
  const double bp = std::atof(arg("bp", "0").c_str());
  const long want = std::atol(arg("beats", "0").c_str());
  const long max_cycles = std::atol(arg("max_cycles", "100000000").c_str());
  std::mt19937_64 rng(std::strtoull(arg("seed", "1").c_str(), nullptr, 10));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::FILE* out = std::fopen(arg("out", "out.hex").c_str(), "w");
  if (!in.is_open() || out == nullptr) {
    std::fprintf(stderr, "harness: cannot open +in=%s or +out=%s\n", arg("in", "in.hex").c_str(),
                 arg("out", "out.hex").c_str());
    return 4;
  }

  auto top = std::make_unique<Vtop>(ctx.get());
  top->ap_clk = 0;
  top->ap_rst_n = 0;
  top->in0_V_TVALID = 0;
  top->out0_V_TREADY = 0;
  for (int i = 0; i < 4; ++i) {
    top->ap_clk = !top->ap_clk;
    top->eval();
  }
  top->ap_rst_n = 1;
  top->eval();

  std::size_t next = 0;
  long got = 0, cycle = 0;
  int rc = 2;
  bool out_pending = false;
  Words out_seen;
  for (; cycle < max_cycles; ++cycle) {
    // drive inputs before the rising edge (a source keeps TVALID/TDATA until accepted)
    if (!top->in0_V_TVALID && next < beats.size() && u(rng) >= gap) {
      put(top->in0_V_TDATA, beats[next]);
      top->in0_V_TVALID = 1;
    }
    top->out0_V_TREADY = u(rng) >= bp;
    top->eval();
    const bool in_fire = top->in0_V_TVALID && top->in0_V_TREADY;
    const bool out_fire = top->out0_V_TVALID && top->out0_V_TREADY;
    if (top->out0_V_TVALID) {
      Words d = get(top->out0_V_TDATA);
      if (out_pending && d != out_seen) {
        std::fprintf(stderr, "protocol: out0_V_TDATA changed before its handshake at cycle %ld\n", cycle);
        rc = 3;
        break;
      }
      out_pending = !out_fire;
      out_seen = d;
      if (out_fire) {
        std::fprintf(out, "%s %ld\n", to_hex(d).c_str(), cycle);
        ++got;
      }
    } else if (out_pending) {
      std::fprintf(stderr, "protocol: out0_V_TVALID dropped before its handshake at cycle %ld\n", cycle);
      rc = 3;
      break;
    }
    top->ap_clk = 1;
    top->eval();
    top->ap_clk = 0;
    top->eval();
    if (in_fire) {
      ++next;
      top->in0_V_TVALID = 0;
    }
    if (got >= want) {
      rc = 0;
      break;
    }
  }
  std::fclose(out);
  std::fprintf(stderr, "harness: %zu/%zu input beats, %ld/%ld output beats, %ld cycles\n", next, beats.size(), got,
               want, cycle + 1);
  top->final();
  return rc;
}
