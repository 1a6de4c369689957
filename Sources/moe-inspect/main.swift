print("moe-inspect")
