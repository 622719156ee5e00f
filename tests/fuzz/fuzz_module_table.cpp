// libFuzzer target: the exporter's module table (.modules.json), as export reads it after the
// exporter ran (export/strategies.hpp): format 1 (one model) and format 2 (one entry per ONNX file of an
// encoder-decoder). The table comes from a child process that read a hostile model, so whatever
// it holds must end as export_failed ("unusable module table"), never as another exception.
#include "modelexport/export/strategies.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace me = modelexport;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

/// Runs `read` on a table holding `data` (a memfd, so no file is left by a crash).
template <class Read>
void with_table(const std::uint8_t* data, std::size_t size, Read&& read) {
    int fd = ::memfd_create("modules.json", MFD_CLOEXEC);
    require(fd >= 0);
    for (std::size_t done = 0; done < size;) {
        ssize_t w = ::write(fd, data + done, size - done);
        require(w > 0);
        done += static_cast<std::size_t>(w);
    }
    try {
        read(me::fs::path("/proc/self/fd/" + std::to_string(fd)));
    } catch (const me::error& e) {
        require(e.code() == me::exit_code::export_failed);
    }
    ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    with_table(data, size, [](const me::fs::path& table) {
        me::produced_onnx out;
        me::detail::read_module_table(table, "exporter", out);
    });
    with_table(data, size, [](const me::fs::path& table) {
        me::produced_onnx out;
        me::detail::read_module_tables(table, "exporter", {"encoder_model.onnx", "decoder_model_merged.onnx"}, out);
        require(out.models.size() == 2 && out.model_modules.size() == 2);
    });
    return 0;
}
