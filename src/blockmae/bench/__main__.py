from .arguments import main

main()
