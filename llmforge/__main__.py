from llmforge.cli.main import main

main()
