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

TEST_CASE("architectures map to tasks by the most specific suffix") {
    CHECK(task_for_architecture("BertForSequenceClassification", "bert")->name == "text-classification");
    CHECK(task_for_architecture("ViTForImageClassification", "vit")->name == "image-classification");
    CHECK(task_for_architecture("BertModel", "bert")->name == "feature-extraction");
    CHECK(task_for_architecture("ForMaskedLM", "bert") == nullptr);  // a suffix alone is not a class
    CHECK(task_for_architecture("BertTokenizer", "bert") == nullptr);
    nlohmann::json config{{"architectures", {"Unknown", "BertForMaskedLM"}}, {"model_type", "bert"}};
    CHECK(task_for_config(config)->name == "fill-mask");
    CHECK(model_class(config) == "Unknown");
}

TEST_CASE("decoders: LMHeadModel and ForCausalLM beat the bare Model suffix, even for an encoder model_type") {
    CHECK(task_for_architecture("GPT2LMHeadModel", "gpt2")->name == "text-generation-with-past");
    CHECK(task_for_architecture("LlamaForCausalLM", "llama")->name == "text-generation-with-past");
    CHECK(task_for_architecture("BertLMHeadModel", "bert")->name == "text-generation-with-past");
    CHECK(find_task("text-generation-with-past")->with_past);
    CHECK(find_task("text-generation-with-past")->optimum_class == "ORTModelForCausalLM");
}

TEST_CASE("text-generation is Optimum's: the same head without its cache, asked for by name only") {
    const task_info* plain = find_task("text-generation");
    REQUIRE(plain);
    CHECK_FALSE(plain->with_past);
    CHECK(plain->optimum_class == "ORTModelForCausalLM");
    CHECK(plain->architecture_suffixes.empty());
    nlohmann::json config{{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}};
    CHECK_NOTHROW(check_task_matches_architecture(*plain, config, "config.json"));
    CHECK_NOTHROW(check_task_matches_architecture(*find_task("feature-extraction-with-past"), config, "config.json"));
    CHECK_THROWS_AS(check_task_matches_architecture(*find_task("text-classification"), config, "config.json"),
                    usage_error);
}

TEST_CASE("a bare <X>Model names feature-extraction only for encoder model types, zero-shot classification for CLIP") {
    CHECK(task_for_architecture("GPT2Model", "gpt2") == nullptr);
    CHECK(task_for_architecture("CLIPModel", "clip")->name == "zero-shot-image-classification");  // as Optimum infers
    CHECK(task_for_architecture("RobertaModel", "roberta")->name == "feature-extraction");
    CHECK(task_for_architecture("Wav2Vec2Model", "wav2vec2")->name == "feature-extraction");
    CHECK(task_for_architecture("BertModel", "") == nullptr);  // no model_type: the name does not tell
    nlohmann::json gpt2{{"architectures", {"GPT2Model"}}, {"model_type", "gpt2"}};
    CHECK(task_for_config(gpt2) == nullptr);
    CHECK(architectures_hint(gpt2).find("GPT2Model") != std::string::npos);
    CHECK(task_for_architecture("OwlViTForObjectDetection", "owlvit")->name == "zero-shot-object-detection");
    CHECK(task_for_architecture("YolosForObjectDetection", "yolos")->name == "object-detection");
    CHECK(task_for_architecture("UniSpeechSatForSequenceClassification", "unispeech-sat")->name ==
          "audio-classification");
}

TEST_CASE("audio model types: ForSequenceClassification is audio-classification, ForCTC speech recognition") {
    CHECK(task_for_architecture("Wav2Vec2ForSequenceClassification", "wav2vec2")->name == "audio-classification");
    CHECK(task_for_architecture("HubertForSequenceClassification", "hubert")->name == "audio-classification");
    CHECK(task_for_architecture("BertForSequenceClassification", "bert")->name == "text-classification");
    CHECK(task_for_architecture("Wav2Vec2ForCTC", "wav2vec2")->name == "automatic-speech-recognition");
    CHECK(find_task("automatic-speech-recognition")->optimum_class == "ORTModelForCTC");
    CHECK(find_task("automatic-speech-recognition")->needs_tokenizer);
    CHECK_FALSE(find_task("audio-classification")->needs_tokenizer);
}

TEST_CASE("a --task that contradicts the head in architectures is refused; a backbone accepts any") {
    nlohmann::json qa{{"architectures", {"BertForQuestionAnswering"}}, {"model_type", "bert"}};
    CHECK_THROWS_AS(check_task_matches_architecture(*find_task("text-classification"), qa, "config.json"), usage_error);
    CHECK_NOTHROW(check_task_matches_architecture(*find_task("question-answering"), qa, "config.json"));
    // A head's checkpoint exports as its bare base model, as optimum-cli allows.
    CHECK_NOTHROW(check_task_matches_architecture(*find_task("feature-extraction"), qa, "config.json"));
    nlohmann::json backbone{{"architectures", {"BertModel"}}, {"model_type", "bert"}};
    CHECK_NOTHROW(check_task_matches_architecture(*find_task("fill-mask"), backbone, "config.json"));
    CHECK(head_architecture(qa).name == "BertForQuestionAnswering");
    CHECK(head_architecture(backbone).name.empty());
}

TEST_CASE("every task is complete: inputs, outputs and their dynamic axes, Auto class") {
    for (const auto& t : tasks()) {
        CAPTURE(t.name);
        CHECK_FALSE((t.inputs.empty() && t.optional_inputs.empty()));
        CHECK_FALSE(t.outputs.empty());
        CHECK_FALSE(t.auto_class.empty());
        // Optimum infers every task from some class except these, which only --task names.
        // (text-generation, text2text-generation, image-to-text and automatic-speech-recognition of an
        // encoder-decoder: Optimum infers the -with-past task instead.)
        const bool task_only = t.name == "feature-extraction-with-past" || t.name == "keypoint-detection" ||
                               t.name == "time-series-forecasting" || t.name == "reinforcement-learning" ||
                               t.name == "text-generation" || t.name == "text2text-generation" ||
                               t.name == "image-to-text" ||
                               (t.name == "automatic-speech-recognition" && !t.encoder_decoder.empty());
        CHECK(task_only == (t.architecture_suffixes.empty() && t.model_type_suffixes.empty()));
        for (const auto* names : {&t.inputs, &t.optional_inputs, &t.outputs})
            for (auto n : *names)
                CHECK(std::any_of(t.dynamic_axes.begin(), t.dynamic_axes.end(), [&](const tensor_axes& a) {
                    return a.tensor == n && !a.axes.empty() && a.axes.front().index == 0 &&
                           a.axes.front().name.size() >= 10 &&
                           a.axes.front().name.substr(a.axes.front().name.size() - 10) == "batch_size";
                }));
        CHECK(t.with_past != t.cache.input_prefix.empty());
    }
    CHECK(find_task("multiple-choice")->dynamic_axes.front().axes.at(1).name == "num_choices");
    CHECK(find_task("semantic-segmentation")->transformers_js_pipeline.empty());
    CHECK(find_task("fill-mask")->transformers_js_pipeline == "fill-mask");
    CHECK(find_task("object-detection")->labels_extra == 1);
    CHECK(find_task("time-series-forecasting")->kind == modality::time_series);
    CHECK(find_task("reinforcement-learning")->kind == modality::trajectory);
    for (const auto& r : refused_tasks()) {
        CAPTURE(r.name);
        if (r.model_types.empty()) {
            CHECK(find_task(r.name) == nullptr);
            CHECK(unknown_task_message(r.name).find(std::string(r.reason)) != std::string::npos);
            continue;
        }
        // Refused for its model types only: the row serves the others.
        for (auto model_type : r.model_types) {
            const nlohmann::json config{{"model_type", model_type}};
            CHECK(find_task(r.name, config) == nullptr);
            CHECK(unknown_task_message(r.name, &config).find(std::string(r.reason)) != std::string::npos);
        }
    }
    const nlohmann::json speecht5{{"model_type", "speecht5"}, {"is_encoder_decoder", true}},
        musicgen{{"model_type", "musicgen"}, {"is_encoder_decoder", true}}, vits{{"model_type", "vits"}};
    CHECK(unknown_task_message("text-to-speech", &speecht5).find("SpeechT5") != std::string::npos);
    REQUIRE(find_task("text-to-speech", vits));
    CHECK(find_task("text-to-speech", vits)->name == "text-to-audio");
    CHECK(find_task("text-to-speech", vits)->encoder_decoder.empty());
    CHECK(task_for_architecture("VitsModel", "vits") == find_task("text-to-audio"));
    // MusicGen's text-to-audio is its row of several files, the one for encoder-decoder configs.
    REQUIRE(find_task("text-to-audio", musicgen));
    CHECK(find_task("text-to-audio", musicgen)->encoder_decoder.files.front() == "text_encoder.onnx");
    CHECK(task_for_architecture("MusicgenForConditionalGeneration", "musicgen")->name == "text-to-audio");
    CHECK(unknown_task_message("no-such-task").find("known tasks: text-classification") != std::string::npos);
    CHECK(task_for_architecture("PatchTSTForPrediction", "patchtst") == nullptr);
    CHECK(decoder_cache().input_prefix == "past_key_values");
    CHECK(axis_at(decoder_cache().output_axes, 2) == "past_sequence_length + sequence_length");
}

TEST_CASE("encoder-decoders: ForConditionalGeneration names a task only for the listed encoder-decoder model types") {
    const auto* t5 = task_for_architecture("T5ForConditionalGeneration", "t5");
    REQUIRE(t5);
    CHECK(t5->name == "text2text-generation-with-past");
    CHECK(t5->optimum_class == "ORTModelForSeq2SeqLM");
    CHECK(t5->encoder_decoder.exporter == "htp_seq2seq.py");
    CHECK(t5->encoder_decoder.files.front() == "encoder_model.onnx");
    CHECK(t5->encoder_decoder.files.size() == 4);
    const auto* whisper = task_for_architecture("WhisperForConditionalGeneration", "whisper");
    REQUIRE(whisper);
    CHECK(whisper->optimum_class == "ORTModelForSpeechSeq2Seq");
    CHECK(whisper->encoder_decoder.exporter_task == "automatic-speech-recognition-with-past");
    CHECK(find_task("automatic-speech-recognition")->encoder_decoder.empty());        // CTC stays one model.onnx
    CHECK(task_for_architecture("BlipForConditionalGeneration", "blip") == nullptr);  // not guessed
    CHECK(find_task("text2text-generation-with-past") == t5);
}

TEST_CASE("a task name shared by two rows: the encoder-decoder's for an is_encoder_decoder config") {
    const nlohmann::json whisper{{"model_type", "whisper"},
                                 {"is_encoder_decoder", true},
                                 {"architectures", {"WhisperForConditionalGeneration"}}};
    const nlohmann::json wav2vec2{{"model_type", "wav2vec2"}, {"architectures", {"Wav2Vec2ForCTC"}}};
    const task_info* ctc = find_task("automatic-speech-recognition", wav2vec2);
    const task_info* speech = find_task("automatic-speech-recognition", whisper);
    REQUIRE(ctc);
    REQUIRE(speech);
    CHECK(ctc->optimum_class == "ORTModelForCTC");
    CHECK(speech->optimum_class == "ORTModelForSpeechSeq2Seq");
    CHECK(speech->encoder_decoder.files.size() == 2);  // Optimum's task without the cache
    CHECK_FALSE(decodes_with_cache(*speech));
    CHECK(&resolve_task("automatic-speech-recognition", whisper, "config.json") ==
          speech);  // the head, without its cache
    CHECK(&resolve_task("", whisper, "config.json") == find_task("automatic-speech-recognition-with-past"));
    const nlohmann::json t5{{"model_type", "t5"}, {"is_encoder_decoder", true}, {"architectures", {"T5Model"}}};
    const task_info* base = find_task("feature-extraction-with-past", t5);
    REQUIRE(base);
    CHECK(base->encoder_decoder.decoder_output == "last_hidden_state");
    CHECK(base->encoder_decoder.files.size() == 4);
    CHECK(find_task("feature-extraction-with-past")->encoder_decoder.empty());
    CHECK(task_names().find("feature-extraction-with-past, feature-extraction-with-past") == std::string::npos);
}

TEST_CASE("input_alternatives: Moonshine's input_values stands for the speech encoder's input_features") {
    const task_info* asr =
        find_task("automatic-speech-recognition-with-past", nlohmann::json{{"is_encoder_decoder", true}});
    REQUIRE(asr);
    auto takes = [](std::initializer_list<std::string_view> names) {
        return [names](std::string_view n) { return std::find(names.begin(), names.end(), n) != names.end(); };
    };
    CHECK(asr->takes_required("input_features", takes({"input_features"})));
    CHECK(asr->takes_required("input_features", takes({"input_values", "attention_mask"})));
    CHECK_FALSE(asr->takes_required("input_features", takes({"pixel_values"})));
    CHECK(asr->is_alternative_input("input_values"));
    CHECK_FALSE(asr->is_alternative_input("input_features"));
    // A row without alternatives takes only its own names.
    const task_info* ctc = find_task("automatic-speech-recognition");
    REQUIRE(ctc);
    CHECK_FALSE(ctc->takes_required("input_values", takes({"input_features"})));
}
