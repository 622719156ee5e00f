// modelexport/detail/sha256.hpp — streaming SHA-256 (OpenSSL EVP): package file hashes (docs/design.md §1, §9).
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

namespace modelexport {

/// Streaming SHA-256 over OpenSSL's EVP interface.
class sha256 {
public:
    sha256() : ctx_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
            throw std::runtime_error("OpenSSL SHA-256 unavailable");
    }
    void update(const void* data, std::size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
    /// Lower-case hex digest; the object cannot be updated afterwards.
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        EVP_DigestFinal_ex(ctx_.get(), md, &len);
        static const char* digits = "0123456789abcdef";
        std::string out;
        for (unsigned i = 0; i < len; ++i) {
            out += digits[md[i] >> 4];
            out += digits[md[i] & 15];
        }
        return out;
    }

private:
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

/// Hex SHA-256 of bytes in memory.
inline std::string sha256_hex(const std::string& bytes) {
    sha256 h;
    h.update(bytes.data(), bytes.size());
    return h.hex();
}

}  // namespace modelexport
