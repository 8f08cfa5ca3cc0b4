from photosplat.cli import main

main()
