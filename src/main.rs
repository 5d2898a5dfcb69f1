fn main() {
    print!("{}", clear_operator::resource::crd_yaml());
}
