// Reads a model package at run time, as an application shipping it would.
#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

namespace fs = std::filesystem;

static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

static std::string sha256_hex(const std::string& bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) out += {hex[md[i] >> 4], hex[md[i] & 15]};
    return out;
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    fs::path pkg = argv[1];
    auto config = nlohmann::json::parse(slurp(pkg / "config.json"));
    auto tokenizer = nlohmann::json::parse(slurp(pkg / "tokenizer.json"));
    auto meta = nlohmann::json::parse(slurp(pkg / "export_metadata.json"));
    for (const auto& [name, entry] : meta["files"].items()) {
        if (sha256_hex(slurp(pkg / name)) != entry["sha256"]) {
            std::cerr << name << ": hash does not match export_metadata.json\n";
            return 1;
        }
    }
    std::cout << "model_type " << config["model_type"].get<std::string>() << ", vocabulary "
              << tokenizer["model"]["vocab"].size() << " tokens, " << meta["files"].size() << " files verified\n";
    return config["model_type"] == "bert" && tokenizer["model"]["vocab"].size() == config["vocab_size"] ? 0 : 1;
}
