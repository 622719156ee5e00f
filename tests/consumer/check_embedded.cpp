// Links model.onnx into the program and checks its hash at run time.
#include "bert_data.hpp"

#include <openssl/evp.h>

#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(bert_data::model_data(), bert_data::model_size, md, &len, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string got;
    for (unsigned i = 0; i < len; ++i) got += {hex[md[i] >> 4], hex[md[i] & 15]};
    bool same_size =
        argc < 2 || std::filesystem::file_size(std::filesystem::path(argv[1]) / "model.onnx") == bert_data::model_size;
    std::cout << "embedded model.onnx: " << bert_data::model_size << " bytes, sha256 " << got << "\n";
    return got == bert_data::model_sha256 && same_size ? 0 : 1;
}
