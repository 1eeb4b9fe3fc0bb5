from kocscope.cli import main

main()
