{
  "targets": [
    {
      "target_name": "gpt_native",
      "sources": [
        "<!@(node -e \"const fs=require('fs');const out=[];for(const d of ['native','native/napi','native/cpu','native/ref','native/tokenizer']){if(!fs.existsSync(d))continue;for(const f of fs.readdirSync(d).sort())if(/\\.(cc|cpp)$/.test(f))out.push(d+'/'+f)}console.log(out.join(' '))\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": [ "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20" ],
      "cflags": [ "-O3", "-pthread", "-fno-math-errno" ],
      "cflags_cc": [ "-std=c++17", "-O3", "-pthread", "-fexceptions", "-fno-math-errno" ],
      "ldflags": [ "-pthread" ],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CFLAGS": [ "-O3" ] }
    }
  ]
}
