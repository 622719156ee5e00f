// The task table generated from share/tasks.json (tasks.hpp, tasks_table.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/tasks.hpp"

using namespace modelexport;

TEST_CASE("names and aliases find their task") {
    REQUIRE(find_task("text-classification"));
    CHECK(find_task("text-classification")->optimum_class == "ORTModelForSequenceClassification");
    CHECK(find_task("image-segmentation") == find_task("semantic-segmentation"));
    CHECK(find_task("nope") == nullptr);
}

TEST_CASE("architectures map to tasks by suffix, in table order with bare Model last") {
    CHECK(task_for_architecture("BertForSequenceClassification")->name == "text-classification");
    CHECK(task_for_architecture("ViTForImageClassification")->name == "image-classification");
    CHECK(task_for_architecture("BertModel")->name == "feature-extraction");
    CHECK(task_for_architecture("ForMaskedLM") == nullptr);  // a suffix alone is not a class
    CHECK(task_for_architecture("BertTokenizer") == nullptr);
    nlohmann::json config{{"architectures", {"Unknown", "BertForMaskedLM"}}};
    CHECK(task_for_config(config)->name == "fill-mask");
    CHECK(model_class(config) == "Unknown");
}

TEST_CASE("every task is complete: inputs, outputs and their dynamic axes, Auto class") {
    for (const auto& t : tasks()) {
        CAPTURE(t.name);
        CHECK_FALSE(t.inputs.empty());
        CHECK_FALSE(t.outputs.empty());
        CHECK_FALSE(t.auto_class.empty());
        CHECK_FALSE(t.architecture_suffixes.empty());
        for (const auto* names : {&t.inputs, &t.optional_inputs, &t.outputs})
            for (auto n : *names)
                CHECK(std::any_of(t.dynamic_axes.begin(), t.dynamic_axes.end(), [&](const tensor_axes& a) {
                    return a.tensor == n && !a.axes.empty() && a.axes.front().index == 0 && a.axes.front().name == "batch_size";
                }));
    }
    CHECK(find_task("multiple-choice")->dynamic_axes.front().axes.at(1).name == "num_choices");
    CHECK(find_task("image-classification")->transformers_js_pipeline.empty());
    CHECK(find_task("fill-mask")->transformers_js_pipeline == "fill-mask");
}
