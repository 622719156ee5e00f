// Built against an installed modelexport (pkg-config or find_package) by tests/e2e/test_cli.py's
// Install tests: needs the ONNX defines to compile, and ONNX, protobuf and libcrypto to link.
#include <modelexport/onnx/model.hpp>
#include <modelexport/tasks.hpp>
#include <modelexport/version.hpp>

#include <onnx/checker.h>

#include <iostream>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: signature MODEL.onnx TASK\n";
        return 2;
    }
    onnx::ModelProto model = modelexport::load_onnx(argv[1]);
    onnx::checker::check_model(model);
    const modelexport::task_info* task = modelexport::find_task(argv[2]);
    if (!task) return 1;
    std::cout << modelexport::version << " " << task->optimum_class;
    for (const auto& input : modelexport::graph_signature(model.graph()).inputs) std::cout << " " << input.name;
    std::cout << "\n";
}
